"""Auto mode end to end through ``compress()``: real quantization, real ONNX Runtime, a small latency budget."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgekit import auto
from edgekit.auto.budget import Budget
from edgekit.compress import CompressOptions, compress
from edgekit.measure.latency import LatencyBudget
from tests.edgekit.conftest import AVX2_CPU
from tests.edgekit.graphs import run, sensitive_input, sensitive_model, sensor_input, sensor_model

FAST = LatencyBudget(warmup=2, min_runs=5, max_runs=20, seconds=0.1, rounds=2)


@pytest.fixture
def sensitive(tmp_path):
    """The sensitive test graph and calibration inputs with their huge feature."""
    path = tmp_path / "sensitive.onnx"
    onnx.save(sensitive_model(), path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=sensitive_input(64))
    return path, calib


def _options(calib, *, modes=(), **auto_kwargs):
    return CompressOptions(modes=modes, calib=calib, auto=auto.AutoOptions(**auto_kwargs), latency_budget=FAST, batch=8)


def test_the_fallback_keeps_the_sensitive_node_in_float(sensitive, tmp_path):
    path, calib = sensitive
    out = tmp_path / "out"
    report = compress(path, out, _options(calib, modes=("int8-static",), prefer="size"), cpu=AVX2_CPU)
    search = report.auto
    assert search is not None
    first, *fallback = search.trials
    assert (first.step, first.meets_budget) == ("candidate", False)
    assert fallback[0].excluded == ("sensitive",)
    assert fallback[0].meets_budget
    assert search.sensitivity["int8-static"][0].node == "sensitive"
    assert [k.sensitivity.node for k in search.kept_float["int8-static+fallback"]] == ["sensitive"]
    assert report.chosen == "int8-static+fallback"
    assert search.verdict is not None
    assert search.verdict.met
    written = onnx.load(out / "model.onnx")
    quantized = {n.name for n in written.graph.node if any(i.endswith("DequantizeLinear_Output") for i in n.input)}
    assert "harmless" in quantized
    assert "sensitive" not in quantized
    x = sensitive_input(32, seed=7)
    agree = run(written, {"x": x})[0].argmax(1) == run(sensitive_model(), {"x": x})[0].argmax(1)
    assert agree.mean() >= 0.9
    saved = json.loads((out / "report.json").read_text())
    assert saved["auto"]["kept_in_float"]["int8-static+fallback"][0]["node"] == "sensitive"
    assert saved["auto"]["verdict"]["met"] is True
    timed = [t for t in saved["auto"]["trials"] if t["latency"]]
    assert [t["step"] for t in timed] == ["candidate", "fallback"]  # the candidate and the fallback kept
    assert {lat["batch"] for lat in timed[0]["latency"]} == {1, 8}
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]


def test_an_impossible_budget_still_writes_the_best_model_and_says_so(sensitive, tmp_path):
    path, calib = sensitive
    out = tmp_path / "out"
    options = _options(calib, budget=Budget(0.0, relative=False), metric="cosine", max_trials=1)
    report = compress(path, out, options, cpu=AVX2_CPU)
    search = report.auto
    assert search is not None
    assert search.verdict is not None
    assert not search.verdict.met
    assert search.verdict.missed_by > 0
    assert "--budget" in search.verdict.advice
    assert "--max-trials" in search.verdict.advice
    assert search.stopped == "--max-trials 1 reached"
    measured = [t for t in search.trials if t.metric is not None]
    best = max(measured, key=lambda t: t.metric or 0.0)
    assert search.scores[report.chosen] == pytest.approx(best.metric)
    assert {t.candidate for t in search.trials} == {
        "fp16",
        "int8-dynamic",
        "int8-dynamic-pc",
        "int8-static",
        "int8-weight",
        "int4-weight",
        "int4-weight-b64",
        "int4-weight-b32",
    }
    assert (out / "model.onnx").is_file()
    assert json.loads((out / "report.json").read_text())["auto"]["verdict"]["met"] is False


def test_a_custom_metric_decides(sensitive, tmp_path):
    path, calib = sensitive
    metric_file = tmp_path / "score.py"
    metric_file.write_text(
        "import numpy as np\n"
        "calls = []\n"
        "def worst_error(outputs, reference):\n"
        "    calls.append(len(outputs))\n"
        "    return float(np.abs(outputs[0] - reference[0]).max())\n"
        "worst_error.higher_is_better = False\n"
    )
    options = _options(
        calib, modes=("fp16", "int8-dynamic"), metric=f"{metric_file}:worst_error", budget=Budget(0.05, relative=False)
    )
    report = compress(path, tmp_path / "out", options, cpu=AVX2_CPU)
    search = report.auto
    assert search is not None
    assert search.metric.name.endswith(":worst_error")
    assert not search.metric.higher_is_better
    assert search.baseline == 0.0
    fp16, dynamic = search.trials[:2]
    assert fp16.meets_budget
    assert fp16.metric is not None
    assert fp16.metric <= 0.05
    assert not dynamic.meets_budget  # dynamic INT8 of the huge input is far off
    assert report.chosen in {"fp16", "fp32", "int8-dynamic+fallback"}


def test_without_calibration_data_auto_mode_does_not_guess_static_ranges(digits, tmp_path):
    options = CompressOptions(
        modes=(), auto=auto.AutoOptions(max_trials=0), eval=digits / "mlp_test.npz", latency_budget=FAST
    )
    report = compress(digits / "mlp.onnx", tmp_path / "out", options, cpu=AVX2_CPU)
    assert report.auto is not None
    assert "int8-static" not in {t.candidate for t in report.auto.trials}
    assert report.auto.metric.name == "accuracy"
    assert not report.data["calibration"]


def test_fp16_that_misses_keeps_the_node_that_needs_float32_mixed_precision(tmp_path):
    path, calib = tmp_path / "sensor.onnx", tmp_path / "calib.npz"
    onnx.save(sensor_model(), path)
    np.savez(calib, x=sensor_input(200))
    out = tmp_path / "out"
    report = compress(path, out, _options(calib, modes=("fp16",), prefer="size"), cpu=AVX2_CPU)
    search = report.auto
    assert search is not None
    first, *fallback = search.trials
    assert (first.candidate, first.step, first.meets_budget) == ("fp16", "candidate", False)
    assert first.metric is not None
    assert first.metric < 0.6  # readings near 1000 in steps of 0.5: the class is lost
    assert search.sensitivity["fp16"][0].node == "center"
    assert fallback[0].excluded == ("center",)
    assert fallback[0].meets_budget
    assert report.chosen == "fp16+fallback"
    written = onnx.load(out / "model.onnx")
    center = next(n for n in written.graph.node if n.name == "center")
    assert center.input[0] == "x"  # reads the float32 input itself, no cast to float16 before it
    halves = [t.name for t in written.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert {"W1", "W2"} <= set(halves)  # the rest is float16
    x = sensor_input(100, seed=9)
    agree = run(written, {"x": x})[0].argmax(1) == run(sensor_model(), {"x": x})[0].argmax(1)
    assert agree.mean() >= 0.99
    saved = json.loads((out / "report.json").read_text())
    assert saved["auto"]["kept_in_float"]["fp16+fallback"][0]["node"] == "center"
