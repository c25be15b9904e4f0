"""The INT8 variant: activation scales from the static INT8 pass, per-channel int8 weights, int32 biases.

Every op case converts and runs; where the ONNX INT8 (QDQ) model runs too, the TFLite model agrees
with it (they share activation scales); the real models keep their top-1 answers.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tflite

from edgekit.errors import ConfigError
from edgekit.tflite import TFLiteConfig, convert
from edgekit.tflite.calibrate import static_qdq
from tests.edgekit.tflite.harness import random_feeds, run_litert, run_litert_batches, run_ort
from tests.edgekit.tflite.test_ops import CASES, build, conv

#: max abs error vs FP32 on a calibration input, over the larger of the output's range and magnitude
INT8_TOLERANCE = 0.08
#: ops that have no int8 kernel and run in float between DEQUANTIZE and QUANTIZE
FLOAT_ISLANDS = {"unary_exp": 1}


def _spread(reference: np.ndarray) -> float:
    return max(float(reference.max() - reference.min()), float(np.abs(reference).max()), 1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_in_int8_stays_close_to_fp32(case):
    model = build(case)
    calibration = [random_feeds(model, seed=s) for s in range(1, 9)]
    converted = convert(model, TFLiteConfig(variant="int8"), calibration=calibration)
    feeds = calibration[0]  # inside the calibrated ranges: no saturation
    want = run_ort(model, feeds)
    got = run_litert(converted, feeds)
    for name, reference in want.items():
        assert np.abs(got[name] - reference).max() <= INT8_TOLERANCE * _spread(reference), name
    edges = sum(1 for t in converted.outputs if t.dtype == "float32")
    assert converted.op_counts.get("DEQUANTIZE", 0) == edges + FLOAT_ISLANDS.get(case, 0), converted.op_counts


@pytest.mark.parametrize(
    "case", ["conv_depthwise", "conv_then_batchnorm_folded", "hardswish_decomposed", "maxpool_ceil"]
)
def test_int8_matches_the_onnx_int8_model_whose_scales_it_took(case):
    model = build(case)
    calibration = [random_feeds(model, seed=s) for s in range(1, 9)]
    qdq = static_qdq(model, calibration)
    converted = convert(model, TFLiteConfig(variant="int8"), calibration=calibration, qdq=qdq)
    assert converted.details["activation_scales"]["qdq"] >= 2
    feeds = random_feeds(model, seed=20)
    want, got = run_ort(qdq, feeds)["y"], run_litert(converted, feeds)["y"]
    assert np.abs(got - want).max() <= 1e-5 * _spread(want)  # the same integer arithmetic


def test_weights_are_int8_per_output_channel_and_biases_int32():
    model = conv(pads=[1, 1, 1, 1])  # 6 output channels
    calibration = [random_feeds(model, seed=s) for s in range(1, 5)]
    data = convert(model, TFLiteConfig(variant="int8"), calibration=calibration).data
    root = tflite.Model.GetRootAsModel(data, 0)
    subgraph = root.Subgraphs(0)
    op = next(
        subgraph.Operators(i)
        for i in range(subgraph.OperatorsLength())
        if root.OperatorCodes(subgraph.Operators(i).OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.CONV_2D
    )
    x, weights, bias, y = (subgraph.Tensors(i) for i in (op.Inputs(0), op.Inputs(1), op.Inputs(2), op.Outputs(0)))
    assert (x.Type(), weights.Type(), bias.Type(), y.Type()) == (tflite.TensorType.INT8,) * 2 + (
        tflite.TensorType.INT32,
        tflite.TensorType.INT8,
    )
    assert weights.Quantization().ScaleLength() == 6
    assert weights.Quantization().QuantizedDimension() == 0
    assert not weights.Quantization().ZeroPointAsNumpy().any()
    expected = x.Quantization().Scale(0) * weights.Quantization().ScaleAsNumpy()
    np.testing.assert_allclose(bias.Quantization().ScaleAsNumpy(), expected, rtol=1e-6)


def test_int8_needs_calibration():
    with pytest.raises(ConfigError, match="needs calibration data"):
        convert(conv(), TFLiteConfig(variant="int8"))


def _digits(digits, name):
    calib = np.load(digits / f"{name}_calib.npz")["input"]
    return [{"input": calib[i : i + 50]} for i in range(0, 200, 50)], np.load(digits / f"{name}_test.npz")


@pytest.mark.parametrize("io", ["float", "int8"])
def test_digits_cnn_keeps_its_accuracy(digits, io):
    model = onnx.load(str(digits / "cnn.onnx"))
    calibration, test = _digits(digits, "cnn")
    converted = convert(model, TFLiteConfig(variant="int8", int8_io=io), calibration=calibration)
    x = test["input"]
    (source,) = converted.inputs
    (logits,) = converted.outputs
    if io == "int8":
        assert (source.dtype, logits.dtype) == ("int8", "int8")
        x = np.clip(np.round(x / source.scale) + source.zero_point, -128, 127).astype(np.int8)
    got = run_litert_batches(converted, {"input": x})["logits"]
    if io == "int8":
        got = (got.astype(np.float32) - logits.zero_point) * logits.scale
    want = run_ort(model, {"input": test["input"]})["logits"]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99
    accuracy, reference = (got.argmax(1) == test["label"]).mean(), (want.argmax(1) == test["label"]).mean()
    assert accuracy >= reference - 0.005
    assert len(converted.data) < 0.35 * len(convert(model).data)


def test_digits_mlp_keeps_its_labels(digits):
    model = onnx.load(str(digits / "mlp.onnx"))
    calibration, test = _digits(digits, "mlp")
    converted = convert(model, TFLiteConfig(variant="int8"), calibration=calibration)
    got = run_litert_batches(converted, {"input": test["input"]})
    want = run_ort(model, {"input": test["input"]})
    assert (got["label"] == want["label"]).mean() >= 0.99
    assert (got["label"] == test["label"]).mean() >= (want["label"] == test["label"]).mean() - 0.005


def test_ppocr_classifier_keeps_its_answers(ppocr_cls, ppocr_cls_many_inputs, ppocr_cls_calibration):
    model = onnx.load(str(ppocr_cls))
    config = TFLiteConfig(variant="int8", input_shapes={"x": (1, 3, 48, 192)})
    converted = convert(model, config, calibration=ppocr_cls_calibration)
    assert converted.details["activation_scales"]["qdq"] > 100
    output = model.graph.output[0].name
    feeds = {"x": ppocr_cls_many_inputs["inputs"]}
    got, want = run_litert_batches(converted, feeds)[output], run_ort(model, feeds)[output]
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99  # measured: 99.6 %
