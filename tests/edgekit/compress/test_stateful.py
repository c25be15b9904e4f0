"""A streaming Conv1d + LSTM model (tools/lstm_model.py) compressed with its state fed back along sequences."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgekit import auto
from edgekit.cli import app
from edgekit.compress import CompressOptions, compress
from edgekit.measure.latency import LatencyBudget
from tests.models import tools_module

FAST = LatencyBudget(warmup=2, min_runs=5, max_runs=20, seconds=0.1, rounds=2)
runner = CliRunner()


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    """The model and its calibration and evaluation sequences (trained for a few seconds)."""
    return tools_module("lstm_model").build(tmp_path_factory.mktemp("lstm"))


def agreement_along_sequences(reference, candidate, x):
    """Share of steps where both models, each fed back its own ``hn``/``cn``, choose the same class."""
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (reference, candidate)]
    same = steps = 0
    for seq in x:
        states = [(np.zeros((1, 1, 64), np.float32),) * 2 for _ in sessions]
        for frame in seq:
            picks = []
            for i, session in enumerate(sessions):
                logits, hn, cn = session.run(["logits", "hn", "cn"], {"x": frame, "h": states[i][0], "c": states[i][1]})
                states[i] = (hn, cn)
                picks.append(int(logits.argmax()))
            same += picks[0] == picks[1]
            steps += 1
    return same / steps


def test_a_stateful_model_is_calibrated_on_sequences_and_meets_a_1_percent_budget(lstm, tmp_path):
    out = tmp_path / "out"
    # by size: which variant is fastest depends on the CPU (on some FP32 is, and latency would keep it)
    searched = auto.AutoOptions(budget=auto.parse_budget("1%"), prefer="size")
    options = CompressOptions(modes=(), auto=searched, calib=lstm["calib"], eval=lstm["eval"], latency_budget=FAST)

    report = compress(lstm["model"], out, options)

    assert report.auto is not None
    assert report.auto.verdict is not None
    assert report.auto.verdict.met
    written = out / "model.onnx"
    assert written.stat().st_size < lstm["model"].stat().st_size
    x = np.load(lstm["eval"])["x"]
    assert agreement_along_sequences(lstm["model"], written, x) >= 0.99
    # static INT8 was calibrated on the steps of 32 sequences of 16, the state as the FP32 model carried it
    assert report.data["calibration"]["samples"] == 32 * 16
    found = "32 sequences of 16 steps, state fed back hn → h, cn → c (found by name and shape; set with --state)"
    assert f"lstm_calib.npz: {found}" in report.warnings
    static = next(t for t in report.auto.trials if t.candidate == "int8-static" and t.step == "candidate")
    assert static.meets_budget


def test_calibrating_frame_by_frame_from_a_zero_state_misses_where_sequences_meet(lstm, tmp_path):
    """What the sequence contract fixes: the same frames, each from a zero state, give INT8 ranges too narrow."""
    x = np.load(lstm["calib"])["x"].reshape(-1, 1, 1, 40)[:, 0]
    frames = tmp_path / "frames.npz"
    zeros = np.zeros((len(x), 1, 64), np.float32)
    np.savez(frames, x=x, h=zeros, c=zeros)
    searched = auto.AutoOptions(budget=auto.parse_budget("1%"), max_trials=0)
    options = CompressOptions(
        modes=("int8-static",), auto=searched, calib=frames, eval=lstm["eval"], latency_budget=FAST
    )

    report = compress(lstm["model"], tmp_path / "out", options)

    assert report.auto is not None
    assert report.auto.verdict is not None
    assert not report.auto.verdict.met


def test_the_cli_takes_the_state_pairs_and_bundles_the_result(lstm, tmp_path):
    out = tmp_path / "out"
    argv = ["compress", str(lstm["model"]), "-o", str(out), "--calib", str(lstm["calib"]), "--eval", str(lstm["eval"])]
    result = runner.invoke(app, [*argv, "--state", "h:hn,c:cn", "--budget", "1%", "--timing", "0.1"])

    assert result.exit_code == 0, result.output
    assert "budget 1% met" in result.stdout.strip().splitlines()[-1]
    # the bundle's golden samples are steps with the state the original fed back: its self-test passes
    assert (out / "lstm-1.0.0.edgebundle").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["evaluation"]["samples"] == 64 * 16
    # pairs given on the command line are not a guess: no note about finding them
    assert not any("found by name and shape" in w for w in report["warnings"])


@pytest.mark.parametrize(
    ("state", "line"),
    [
        ("h=hn", "--state 'h=hn' is not INPUT:OUTPUT pairs: write it like h:hn,c:cn (or none)"),
        ("h:hn,c", "--state 'h:hn,c' is not INPUT:OUTPUT pairs: write it like h:hn,c:cn (or none)"),
        (
            "h:hn,state:cn",
            (
                "--state state:cn: the model has no input 'state' (the model's inputs are x, h, c; "
                "its outputs logits, hn, cn)"
            ),
        ),
        (
            "h:cn,c:logits",
            (
                "--state c:logits: input 'c' is float32 [1, 1, 64] but output 'logits' is float32 [1, 6]: "
                "pair each state input with the output of its shape"
            ),
        ),
    ],
)
def test_state_pairs_that_do_not_fit_are_one_line_and_exit_2(lstm, tmp_path, state, line):
    argv = ["compress", str(lstm["model"]), "-o", str(tmp_path / "out"), "--calib", str(lstm["calib"])]
    result = runner.invoke(app, [*argv, "--state", state])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [f"error: {line}"]
    assert not (tmp_path / "out").exists()
