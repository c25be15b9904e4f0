"""``edgekit compress --to tflite``: TFLite variants measured in LiteRT, chosen, written and bundled."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.auto import AutoOptions, parse_budget
from edgekit.compress import CompressOptions, compress
from edgekit.compress.tflite_output import plan
from edgekit.errors import ConfigError, TFLiteConversionError
from edgekit.measure.latency import LatencyBudget
from edgekit_runtime import load
from edgekit_runtime.errors import InvalidInputError
from tests.edgekit.graphs import make_model, weight

FAST = LatencyBudget(warmup=2, min_runs=5, max_runs=20, seconds=0.1, rounds=2)


def test_the_plan_follows_the_modes():
    assert plan((), auto=True, has_real_calibration=True, only_target=True).variants == ("fp32", "fp16", "int8")
    assert plan((), auto=True, has_real_calibration=False, only_target=True).variants == ("fp32", "fp16")
    explicit = plan(("int8-static", "int8-dynamic", "fp16"), auto=False, has_real_calibration=False, only_target=False)
    assert (explicit.variants, explicit.result) == (("fp32", "int8", "fp16"), "int8")
    assert plan(("prune",), auto=False, has_real_calibration=False, only_target=False).result == "fp32"
    with pytest.raises(ConfigError, match="--mode int8-dynamic has no TFLite variant"):
        plan(("int8-dynamic",), auto=False, has_real_calibration=True, only_target=True)


@pytest.fixture(scope="module")
def tflite_only(digits, tmp_path_factory):
    """The digits CNN compressed to TFLite alone under a half-point budget, and bundled."""
    out = tmp_path_factory.mktemp("tflite") / "out"
    options = CompressOptions(
        modes=(),
        auto=AutoOptions(budget=parse_budget("0.5pt")),
        calib=digits / "cnn_calib.npz",
        eval=digits / "cnn_test.npz",
        latency_budget=FAST,
        targets=("tflite",),
        bundle=_bundle_options(),
    )
    return compress(digits / "cnn.onnx", out, options), out


def _bundle_options():
    from edgekit.bundle.pack import BundleOptions

    return BundleOptions(name="cnn-tflite")


def test_tflite_variants_are_measured_in_litert_against_the_original(tflite_only):
    report, _ = tflite_only
    names = [v.name for v in report.variants]
    assert names == ["tflite-fp32", "tflite-fp16", "tflite-int8"]
    assert report.tflite is not None
    assert report.chosen == report.tflite.chosen
    for v in report.variants:
        assert (v.engine, v.threads) == ("litert", 1)
        assert [lat.batch for lat in v.latency] == [1]
        assert v.fidelity[0].headline == "top1_agreement"
        assert v.fidelity[0].value >= 0.99
        assert v.accuracy is not None
        assert report.original.accuracy - v.accuracy <= 0.005
        assert v.passes[-1].name == "tflite"
    fp32, _, int8 = report.variants
    assert fp32.fidelity[0].max_abs_error < 1e-4
    assert int8.size.raw < 0.35 * fp32.size.raw
    assert int8.passes[0].name == "int8-static"  # the static INT8 pass's QDQ scales
    assert int8.passes[-1].details["activation_scales"]["qdq"] > 0
    assert report.tflite.auto is not None
    assert report.tflite.auto.verdict is not None
    assert report.tflite.auto.verdict.met
    assert report.auto is None  # no ONNX search with --to tflite alone


def test_only_the_result_and_its_bundle_are_written(tflite_only):
    report, out = tflite_only
    assert sorted(p.name for p in out.iterdir()) == ["cnn-tflite-1.0.0.edgebundle", "model.tflite", "report.json"]
    written = json.loads((out / "report.json").read_text())
    assert written["targets"] == ["tflite"]
    assert written["tflite"]["layouts"]["inputs"][0] | {"shape": None} == {
        "name": "input",
        "shape": None,
        "dtype": "float32",
        "layout": "NHWC",
        "perm": [0, 2, 3, 1],
    }
    chosen = next(v for v in written["variants"] if v["name"] == report.chosen)
    assert chosen["file"] == "model.tflite"
    assert chosen["size"]["raw_bytes"] == (out / "model.tflite").stat().st_size


def test_the_bundle_says_nhwc_and_the_runtime_serves_it(tflite_only, digits):
    report, out = tflite_only
    model = load(out / "cnn-tflite-1.0.0.edgebundle")
    assert model.backend.name == "litert"
    assert model.self_test is not None
    assert model.self_test.passed
    manifest = model.manifest or {}
    assert manifest["inputs"][0]["layout"] == "NHWC"
    assert manifest["inputs"][0]["perm"] == [0, 2, 3, 1]
    assert "layout" not in manifest["outputs"][0]  # [1, 10] logits: nothing moved
    assert manifest["models"][0]["converted_from"] == "onnx"
    assert manifest["compression"]["chosen"] == report.chosen
    assert manifest["compression"]["speedup_against"] == "tflite-fp32"
    assert model.inputs[0].layout == "NHWC"
    test = np.load(digits / "cnn_test.npz")
    x = test["input"][:1]
    assert model.predict({"input": x.transpose(0, 2, 3, 1)})["logits"].argmax() == test["label"][0]
    with pytest.raises(InvalidInputError, match=r"takes NHWC \(channels last\), send x.transpose\(0, 2, 3, 1\)"):
        model.predict({"input": x})


def test_onnx_and_tflite_side_by_side(digits, tmp_path):
    options = CompressOptions(
        modes=("int8-static", "fp16"),
        calib=digits / "cnn_calib.npz",
        eval=digits / "cnn_test.npz",
        max_eval_samples=100,
        latency_budget=FAST,
        targets=("onnx", "tflite"),
    )
    report = compress(digits / "cnn.onnx", tmp_path, options)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fp16.onnx",
        "model.onnx",
        "model.tflite",
        "report.json",
        "tflite-fp16.tflite",
        "tflite-fp32.tflite",
    ]
    assert report.chosen == "int8-static"
    assert report.tflite is not None
    assert report.tflite.chosen == "tflite-int8"
    files = {v.name: v.file for v in report.variants}
    assert files == {
        "int8-static": "model.onnx",
        "fp16": "fp16.onnx",
        "tflite-fp32": "tflite-fp32.tflite",
        "tflite-int8": "model.tflite",
        "tflite-fp16": "tflite-fp16.tflite",
    }
    engines = {v.name: v.engine for v in report.variants}
    assert engines["fp16"] == "onnxruntime"
    assert engines["tflite-fp16"] == "litert"


def _erf_model(path):
    """A Conv followed by Erf, which TFLite has no builtin for."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Erf", ["c"], ["y"], name="gelu_erf"),
    ]
    onnx.save(make_model(nodes, [x], [y], [weight(rng, "w", 4, 3, 3, 3)]), str(path))
    return path


def test_unsupported_ops_stop_tflite_alone_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    options = CompressOptions(modes=("fp16",), latency_budget=FAST, targets=("tflite",))
    with pytest.raises(TFLiteConversionError, match=r"unsupported: Erf \(node: gelu_erf\)"):
        compress(_erf_model(tmp_path / "erf.onnx"), out, options)
    assert not out.exists()


def test_with_onnx_too_the_onnx_result_comes_out_and_the_tflite_error_is_reported(tmp_path):
    out = tmp_path / "out"
    options = CompressOptions(modes=("fp16",), latency_budget=FAST, targets=("onnx", "tflite"))
    report = compress(_erf_model(tmp_path / "erf.onnx"), out, options)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]
    assert report.chosen == "fp16"
    assert report.tflite is not None
    assert report.tflite.chosen is None
    assert report.tflite.exit_code == 3
    assert report.tflite.error is not None
    assert "Erf (node: gelu_erf)" in report.tflite.error
    assert json.loads((out / "report.json").read_text())["tflite"]["error"] == report.tflite.error
