"""``edgekit compress --target``: the profile's threads, reduce_range, modes and format, in the options and the CLI."""

from __future__ import annotations

import json
import zipfile

import pytest
from typer.testing import CliRunner

from edgekit.auto import AutoOptions
from edgekit.cli import app
from edgekit.compress import CompressOptions
from edgekit.compress import target as compress_target
from edgekit.compress.onnx_output import candidates as _candidates
from edgekit.passes import QuantizeDynamicConfig, QuantizeStaticConfig
from edgekit_runtime import targets
from edgekit_runtime.cpu import CpuInfo
from tests.edgekit.compress.test_tflite_output import _erf_model

runner = CliRunner()
FAST = ["--max-eval-samples", "64", "--timing", "0.1"]
TWO_CORES = CpuInfo("x86_64", frozenset({"avx2"}), 2)
EIGHT_CORES = CpuInfo("x86_64", frozenset({"avx2"}), 8)


def test_the_target_sets_reduce_range_where_the_user_did_not():
    x86 = compress_target.for_target(CompressOptions(target=targets.get("x86")))
    assert (x86.static.reduce_range, x86.dynamic.reduce_range) == (True, True)
    pi = compress_target.for_target(CompressOptions(target=targets.get("rpi4")))
    assert (pi.static.reduce_range, pi.dynamic.reduce_range) == (False, False)
    chosen = CompressOptions(
        target=targets.get("x86"),
        static=QuantizeStaticConfig(reduce_range=False),
        dynamic=QuantizeDynamicConfig(reduce_range=False),
    )
    assert compress_target.for_target(chosen).static.reduce_range is False
    assert compress_target.for_target(CompressOptions()).static.reduce_range is None  # no target: the CPU decides


def test_latency_threads_are_the_targets_cut_to_this_machine():
    pi = CompressOptions(target=targets.get("rpi4"))
    assert compress_target.threads(pi, TWO_CORES) == 2
    assert compress_target.threads(pi, EIGHT_CORES) == 4
    assert compress_target.threads(CompressOptions(target=targets.get("jetson-orin")), EIGHT_CORES) == 6
    assert compress_target.threads(CompressOptions(threads=3, target=targets.get("rpi4")), EIGHT_CORES) == 3
    assert compress_target.threads(CompressOptions(), EIGHT_CORES) == 4


def test_the_report_says_where_latency_was_measured():
    pi = CompressOptions(target=targets.get("rpi4"))
    (line,) = compress_target.on_host(pi, TWO_CORES, 2)
    assert line.startswith("latency was measured on this machine (x86_64, 2 cores, no VNNI, AVX2) with 2 threads")
    assert "not its 4: this machine has 2 cores" in line
    assert line.endswith("run edgekit-runtime bench --target rpi4 on it")
    assert compress_target.on_host(CompressOptions(), TWO_CORES, 2) == []
    assert compress_target.note(pi, 2)["threads_used"] == 2


def test_the_jetson_leaves_dynamic_int8_out_of_the_search():
    auto = AutoOptions()
    plain = [c.name for c in _candidates(CompressOptions(modes=(), auto=auto), has_calibration=True)]
    jetson = CompressOptions(modes=(), auto=auto, target=targets.get("jetson-orin"))
    weight_only = ["int8-weight", "int4-weight", "int4-weight-b64", "int4-weight-b32"]
    assert plain == ["fp16", "int8-dynamic", "int8-dynamic-pc", "int8-static", *weight_only]
    assert [c.name for c in _candidates(jetson, has_calibration=True)] == ["fp16", "int8-static", *weight_only]
    asked = CompressOptions(modes=("int8-dynamic",), auto=auto, target=targets.get("jetson-orin"))
    assert [c.name for c in _candidates(asked, has_calibration=True)] == ["int8-dynamic"]  # asked for: made


@pytest.fixture(scope="module")
def pi4_run(digits, tmp_path_factory):
    """The digits CNN compressed for a Raspberry Pi 4: TFLite first."""
    out = tmp_path_factory.mktemp("rpi4") / "out"
    args = ["compress", str(digits / "cnn.onnx"), "-o", str(out), "--calib", str(digits / "cnn_calib.npz")]
    args += ["--eval", str(digits / "cnn_test.npz"), "--target", "rpi4", *FAST]
    return runner.invoke(app, args), out


def test_a_pi4_gets_tflite_first_and_onnx_beside_it(pi4_run):
    result, out = pi4_run
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["targets"] == ["tflite", "onnx"]
    assert report["chosen"].startswith("tflite-")
    assert report["target"]["name"] == "rpi4"
    assert report["target"]["threads_used"] == report["threads"]
    timed = {v["name"]: v["threads"] for v in report["variants"]}
    assert {timed[n] for n in timed if n.startswith("tflite-")} == {report["threads"]}  # LiteRT at the target's too
    static = next(v for v in report["variants"] if v["name"] == "int8-static")
    assert static["passes"][-1]["details"]["reduce_range"] is False  # Arm: full range, whatever this CPU is
    (bundle,) = out.glob("*.edgebundle")
    assert "model.tflite" in zipfile.ZipFile(bundle).namelist()
    assert "for --target rpi4" in result.stdout
    assert "run edgekit-runtime bench --target rpi4 on it" in result.stdout


def test_x86_quantizes_with_seven_bit_weights(digits, tmp_path):
    out = tmp_path / "out"
    args = ["compress", str(digits / "mlp.onnx"), "-o", str(out), "--calib", str(digits / "mlp_calib.npz")]
    args += ["--mode", "int8-static", "--target", "x86", "--no-bundle", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["targets"] == ["onnx"]
    static = next(v for v in report["variants"] if v["name"] == "int8-static")
    assert static["passes"][-1]["details"]["reduce_range"] is True


def test_a_model_tflite_cannot_take_still_gets_its_onnx_bundle_with_a_note(tmp_path):
    model, out = _erf_model(tmp_path / "erf.onnx"), tmp_path / "out"
    result = runner.invoke(app, ["compress", str(model), "-o", str(out), "--mode", "fp16", "--target", "rpi4", *FAST])
    assert result.exit_code == 0, result.output
    assert "note: TFLite cannot take this model; the ONNX result is bundled (cannot convert to TFLite" in result.stdout
    assert not result.stderr
    (bundle,) = out.glob("*.edgebundle")
    assert "model.onnx" in zipfile.ZipFile(bundle).namelist()
    again = ["compress", str(model), "-o", str(tmp_path / "asked"), "--mode", "fp16", "--target", "rpi4", *FAST]
    asked = runner.invoke(app, [*again, "--to", "tflite,onnx"])
    assert asked.exit_code == 3  # asked for by --to: the error it is


def test_an_unknown_target_is_one_line(digits, tmp_path):
    result = runner.invoke(app, ["compress", str(digits / "mlp.onnx"), "-o", str(tmp_path / "o"), "--target", "pi"])
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "error: --target 'pi' is unknown: choose from rpi4, rpi5, rpi-zero2, jetson-orin, x86"
    )
    assert not (tmp_path / "o").exists()
