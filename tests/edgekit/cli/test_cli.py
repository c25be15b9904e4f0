"""The edgekit command line, through typer's runner and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edgekit import __version__
from edgekit.cli import app

runner = CliRunner()
FAST = ["--max-eval-samples", "64", "--timing", "0.2"]


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"edgekit {__version__}"


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from edgekit.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('onnxruntime', 'onnx', 'torch', 'tensorflow') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "compress" in result.stdout
    assert "HEAVY []" in result.stdout


def test_inspect_shows_io_ops_and_parameters(digits):
    result = runner.invoke(app, ["inspect", str(digits / "cnn.onnx")])
    assert result.exit_code == 0, result.output
    assert "[batch, 1, 8, 8]" in result.stdout
    assert "Conv" in result.stdout
    assert "quantized: no" in result.stdout


def test_inspect_json(digits):
    result = runner.invoke(app, ["inspect", str(digits / "mlp.onnx"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [i["name"] for i in data["inputs"]] == ["input"]
    assert data["inputs"][0]["shape"] == ["batch", 64]
    assert data["param_count"] > 1000
    assert data["quantized"] is None


def test_compress_prints_the_table_and_writes_the_result(digits, tmp_path):
    out = tmp_path / "out"
    args = ["compress", str(digits / "cnn.onnx"), "-o", str(out), "--calib", str(digits / "cnn_calib.npz")]
    result = runner.invoke(app, [*args, "--mode", "int8-static", "--eval", str(digits / "cnn_test.npz"), *FAST])
    assert result.exit_code == 0, result.output
    assert "int8-static (result)" in result.stdout
    assert "accuracy" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith(f"wrote {out / 'model.onnx'} (int8-static)")
    assert (out / "model.onnx").is_file()
    assert json.loads((out / "report.json").read_text())["chosen"] == "int8-static"


def test_compress_as_a_subprocess(digits, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "edgekit", "compress", str(digits / "mlp.onnx"), "-o", str(out), "--mode", "fp16"]
    result = subprocess.run([*cmd, "--quiet", *FAST], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out / 'model.onnx'} (fp16)")
    assert (out / "model.onnx").is_file()


def _bad_inputs(tmp_path, digits):
    """(name, argv, exit code, words the one-line error must contain)."""
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes((digits / "cnn.onnx").read_bytes()[:5000])
    pickle = tmp_path / "model.pkl"
    pickle.write_bytes(b"\x80\x04\x95 not really a pickle")
    wrong_names = tmp_path / "wrong.npz"
    np.savez(wrong_names, pixels=np.zeros((4, 1, 8, 8), np.float32), extra=np.zeros(4, np.float32))
    no_batch = tmp_path / "nobatch.npz"
    np.savez(no_batch, input=np.zeros((1, 8, 8), np.float32))
    cnn = str(digits / "cnn.onnx")
    return [
        ("missing file", ["compress", str(tmp_path / "nope.onnx")], 3, ["does not exist"]),
        ("directory", ["compress", str(tmp_path)], 3, ["without an MLmodel file"]),
        ("text file", ["compress", str(text)], 3, ["not a readable ONNX model"]),
        ("truncated", ["compress", str(truncated)], 3, ["truncated or corrupt"]),
        ("pickle", ["compress", str(pickle)], 3, ["cannot be unpickled", "corrupt"]),
        ("url", ["compress", "s3://bucket/model.pkl"], 3, ["is a URL", "local files only"]),
        ("state dict", ["compress", str(tmp_path / "weights.pt")], 3, ["holds no architecture", "module.py:factory"]),
        ("calib names", ["compress", cnn, "--calib", str(wrong_names)], 2, ["missing ['input']", "name each array"]),
        (
            "calib batch",
            ["compress", cnn, "--calib", str(no_batch)],
            2,
            ["[batch, 1, 8, 8]", "add the batch dimension"],
        ),
        ("calib missing", ["compress", cnn, "--calib", str(tmp_path / "c.npz")], 2, ["does not exist"]),
        ("mode", ["compress", cnn, "--mode", "int4"], 2, ["unknown mode 'int4'", "int8-static"]),
        ("op type", ["compress", cnn, "--mode", "int8-dynamic", "--op-types", "Softmax"], 2, ["cannot quantize"]),
        ("no target ops", ["compress", cnn, "--mode", "int8-dynamic", "--op-types", "Gather"], 4, ["no Gather node"]),
        ("sparsity", ["compress", cnn, "--mode", "prune", "--sparsity", "1.5"], 2, ["sparsity 1.5"]),
        ("cleanup", ["compress", cnn, "--cleanup", "magic"], 2, ["--cleanup 'magic'"]),
        ("input shape", ["compress", cnn, "--input-shape", "input:1,1,8,8"], 2, ["NAME=D1,D2"]),
        ("preprocess", ["compress", cnn, "--preprocess", "gamma=2"], 2, ["unknown"]),
        ("budget", ["compress", cnn, "--budget", "lots"], 2, ["--budget 'lots'", "1%"]),
        ("metric", ["compress", cnn, "--metric", "f1"], 2, ["--metric 'f1'", "module:function"]),
        ("metric module", ["compress", cnn, "--metric", "nowhere_mod:f1"], 2, ["cannot import 'nowhere_mod'"]),
        ("metric no budget", ["compress", cnn, "--mode", "fp16", "--metric", "top1"], 2, ["add --budget"]),
        ("prefer", ["compress", cnn, "--prefer", "speed"], 2, ["--prefer 'speed'", "latency, size"]),
        ("max trials", ["compress", cnn, "--max-trials", "-1"], 2, ["--max-trials -1"]),
        ("time limit", ["compress", cnn, "--time-limit", "0"], 2, ["--time-limit 0"]),
        ("timing", ["compress", cnn, "--timing", "0"], 2, ["--timing 0"]),
        ("accuracy no labels", ["compress", cnn, "--metric", "accuracy"], 2, ["needs labels", "--eval"]),
        ("target", ["compress", cnn, "--to", "coreml"], 2, ["--to 'coreml'", "onnx, tflite"]),
        ("target twice", ["compress", cnn, "--to", "tflite,tflite"], 2, ["--to 'tflite,tflite'"]),
        ("tflite mode", ["compress", cnn, "--to", "tflite", "--mode", "prune"], 2, ["no TFLite variant"]),
        ("tflite layout", ["compress", cnn, "--to", "tflite", "--tflite-layout", "nchw"], 2, ["'nchw' is unknown"]),
    ]


@pytest.mark.parametrize("case", range(30))
def test_bad_input_gets_one_line_and_an_exit_code(case, tmp_path, digits, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, argv, code, words = _bad_inputs(tmp_path, digits)[case]
    out = tmp_path / "result"
    result = runner.invoke(app, [*argv, "-o", str(out)])
    assert result.exit_code == code, (name, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (name, result.stderr)
    assert lines[0].startswith("error: "), name
    for word in words:
        assert word in lines[0], (name, lines[0])
    assert "Traceback" not in result.output
    assert not out.exists(), name


def test_bad_input_as_a_subprocess_has_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "edgekit", "compress", str(tmp_path / "missing.onnx")]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith("error: model file")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_auto_mode_meets_a_budget_and_says_so_last(digits, tmp_path):
    out = tmp_path / "out"
    args = ["compress", str(digits / "cnn.onnx"), "-o", str(out), "--calib", str(digits / "cnn_calib.npz")]
    args += ["--eval", str(digits / "cnn_test.npz"), "--budget", "0.5pt", "--prefer", "size", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "search: accuracy >= 0.9794 (baseline 0.9844, budget 0.005)" in result.stdout  # 64 samples: 63 right
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out / 'model.onnx'} (int8-static)")
    assert last.endswith("budget 0.005 met (accuracy 0.9844 >= 0.9794)")
    assert sorted(p.name for p in out.iterdir()) == ["cnn-1.0.0.edgebundle", "model.onnx", "report.json"]


def test_a_missed_budget_exits_5_and_the_last_line_says_by_how_much(tmp_path):
    from tests.edgekit.graphs import sensitive_input, sensitive_model

    model, calib, out = tmp_path / "s.onnx", tmp_path / "calib.npz", tmp_path / "out"
    onnx.save(sensitive_model(), model)
    np.savez(calib, x=sensitive_input(64))
    args = ["compress", str(model), "-o", str(out), "--calib", str(calib), "--metric", "cosine", "--budget", "0"]
    result = runner.invoke(app, [*args, "--max-trials", "1", *FAST])
    assert result.exit_code == 5, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("BUDGET MISSED by ")
    assert "Try: --budget " in last
    assert "raise --max-trials" in last
    assert (out / "model.onnx").is_file()
    assert json.loads((out / "report.json").read_text())["auto"]["verdict"]["met"] is False


def test_to_onnx_and_tflite_writes_onnx_and_exits_3_when_tflite_cannot_express_the_model(tmp_path):
    from tests.edgekit.compress.test_tflite_output import _erf_model

    model, out = _erf_model(tmp_path / "erf.onnx"), tmp_path / "out"
    args = ["compress", str(model), "-o", str(out), "--mode", "fp16", "--to", "onnx,tflite", "--no-bundle", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert result.stdout.strip().splitlines()[-1].startswith(f"wrote {out / 'model.onnx'} (fp16)")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        (
            "error: cannot convert to TFLite, unsupported: Erf (node: gelu_erf): replace them in the exporter "
            "(or fold them away), or ship this model as ONNX (--to onnx)"
        )
    ]
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]
    alone = runner.invoke(app, ["compress", str(model), "-o", str(tmp_path / "alone"), "--to", "tflite", *FAST])
    assert alone.exit_code == 3
    assert alone.stderr.startswith("error: cannot convert to TFLite, unsupported: Erf")
    assert not (tmp_path / "alone").exists()


def test_to_tflite_prints_litert_rows_and_a_line_per_result(digits, tmp_path):
    out = tmp_path / "out"
    args = ["compress", str(digits / "cnn.onnx"), "-o", str(out), "--calib", str(digits / "cnn_calib.npz")]
    args += ["--eval", str(digits / "cnn_test.npz"), "--mode", "int8-static", "--to", "onnx,tflite", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "LiteRT x1" in result.stdout
    onnx_line, tflite_line = result.stdout.strip().splitlines()[-2:]
    assert onnx_line.startswith(f"wrote {out / 'model.onnx'} (int8-static)")
    assert tflite_line.startswith(f"wrote {out / 'model.tflite'} (tflite-int8): ")
    assert "x tflite-fp32's speed (LiteRT, batch 1, 1 thread)" in tflite_line
    bundled = runner.invoke(app, ["bundle", "pack", str(out), "--variant", "tflite-int8", "-o", str(tmp_path)])
    assert bundled.exit_code == 0, bundled.output
    inspected = runner.invoke(app, ["bundle", "inspect", str(tmp_path / "out-1.0.0.edgebundle")])
    assert "NHWC" in inspected.stdout
    assert "against tflite-fp32" in inspected.stdout
    missing = runner.invoke(app, ["bundle", "pack", str(out), "--variant", "fp16", "-o", str(tmp_path)])
    assert missing.exit_code == 2
    assert "--variant fp16 was not written" in missing.stderr
