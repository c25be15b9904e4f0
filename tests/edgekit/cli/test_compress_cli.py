"""``edgekit compress`` on the digits models: a missed budget's bundle, and .npz files that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app

runner = CliRunner()
FAST = ["--max-eval-samples", "64", "--timing", "0.1"]
WITHHELD = "no bundle written: the result, prune, missed its budget; pass --bundle-anyway to bundle it all the same"


def missing(digits, out) -> list[str]:
    """Prune 95% of the CNN's weights under a 0.1-point budget: accuracy falls to about 10%."""
    model, test = str(digits / "cnn.onnx"), str(digits / "cnn_test.npz")
    argv = ["compress", model, "-o", str(out), "--eval", test, "--mode", "prune", "--sparsity", "0.95"]
    return [*argv, "--budget", "0.1pt", *FAST]


def test_a_missed_budget_exits_5_and_says_no_bundle_was_written(digits, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, missing(digits, out))

    assert result.exit_code == 5, result.output
    lines = result.stdout.strip().splitlines()
    assert WITHHELD in lines
    assert lines[-1].startswith("BUDGET MISSED by ")
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]


def test_bundle_anyway_writes_the_bundle_and_still_exits_5(digits, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [*missing(digits, out), "--bundle-anyway"])

    assert result.exit_code == 5, result.output
    assert f"bundle: {out / 'cnn-1.0.0.edgebundle'}" in result.stdout.splitlines()
    assert WITHHELD not in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["cnn-1.0.0.edgebundle", "model.onnx", "report.json"]


def _one_line_error(argv: list[str], out) -> str:
    result = runner.invoke(app, [*argv, "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    (line,) = result.stderr.strip().splitlines()
    return line


def test_bundle_anyway_with_no_bundle_is_one_line_and_exit_2(digits, tmp_path):
    argv = ["compress", str(digits / "cnn.onnx"), "--no-bundle", "--bundle-anyway"]
    line = _one_line_error(argv, tmp_path / "out")
    assert line == "error: --bundle-anyway asks for a bundle and --no-bundle for none: drop one of them"


def _digits_test(digits, path, **names):
    data = np.load(digits / "cnn_test.npz")
    arrays = {"input": data["input"], "label": data["label"], "one_hot": np.eye(10)[data["label"]]}
    np.savez(path, **{new: arrays[old] for new, old in names.items()})
    return path


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            {"x": "input", "y": "label"},
            (
                "error: xy.npz has arrays ['x', 'y'] but the model's inputs are ['input'] (missing ['input']): "
                "name each array after its model input, and labels 'label': np.savez(path, input=x, label=y)"
            ),
        ),
        (
            {"input": "input", "label": "one_hot"},
            (
                "error: the 'label' array has shape [64, 10] but the model predicts one class per sample, "
                "shape [64]: store class indices (for one-hot labels: label=y.argmax(axis=1))"
            ),
        ),
    ],
    ids=["x-and-y", "one-hot-labels"],
)
def test_eval_data_that_does_not_fit_is_one_line_and_exit_2(digits, tmp_path, names, expected):
    data = _digits_test(digits, tmp_path / "xy.npz", **names)
    argv = ["compress", str(digits / "cnn.onnx"), "--eval", str(data), "--mode", "fp16", *FAST]
    assert _one_line_error(argv, tmp_path / "out") == expected


def test_the_only_array_feeds_the_only_input_and_the_output_says_so(digits, tmp_path):
    data = _digits_test(digits, tmp_path / "xl.npz", x="input", label="label")
    argv = ["compress", str(digits / "cnn.onnx"), "--eval", str(data), "--mode", "fp16", "--no-bundle", *FAST]
    result = runner.invoke(app, [*argv, "-o", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    note = (
        "warning: xl.npz: array 'x' feeds the model's only input 'input' (name the array 'input' to make that explicit)"
    )
    assert note in result.stdout.splitlines()
    assert "accuracy 9" in result.stdout.splitlines()[-1]  # the labels were read: ~98.4% on 64 samples


@pytest.fixture
def embeddings_onnx(tmp_path):
    import onnx

    from tests.edgekit.judged_graphs import embedding_model

    path = tmp_path / "emb.onnx"
    onnx.save(embedding_model(), path)
    return path


def test_when_nothing_meets_the_budget_the_last_line_says_why_for_each_candidate(
    embeddings_onnx, tmp_path, monkeypatch
):
    from tests.edgekit.judged_graphs import break_dynamic_int8

    break_dynamic_int8(monkeypatch)
    out = tmp_path / "out"
    argv = ["compress", str(embeddings_onnx), "-o", str(out), "--mode", "int8-dynamic,prune", "--budget", "0"]

    result = runner.invoke(app, [*argv, *FAST])

    assert result.exit_code == 5, result.output
    lines = result.stdout.strip().splitlines()
    assert "judged: embeddings by cosine (worst sample)" in lines
    assert any("int8-dynamic" in line and "failed" in line for line in lines)  # its row in the trials table
    last = lines[-1]
    assert last.startswith("BUDGET MISSED by ")
    assert "the 0 budget needs >= 1; nothing compressed within it: int8-dynamic: failed to load: " in last
    assert "float16" in last
    assert "; prune: cosine 0." in last
    assert " < 1 (output embeddings). Try: " in last


@pytest.mark.parametrize(
    ("metric", "line"),
    [
        (
            "embedding=cosine",
            (
                "error: --metric embedding=cosine: the model has no output 'embedding': name one of embeddings, "
                "judged by top1, cosine, relative, exact"
            ),
        ),
        (
            "embeddings=cosinus",
            (
                "error: --metric 'embeddings=cosinus' is not OUTPUT=METRIC: METRIC is one of top1, cosine, "
                "relative, exact (write it like embeddings=cosine)"
            ),
        ),
    ],
)
def test_a_bad_per_output_metric_is_one_line_and_exit_2(embeddings_onnx, tmp_path, metric, line):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compress", str(embeddings_onnx), "-o", str(out), "--metric", metric, *FAST])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [line]
    assert not out.exists()
