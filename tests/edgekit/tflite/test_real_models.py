"""The real models of issue 8, converted to FP32 and FP16 and run in LiteRT against onnxruntime.

FP32 must match within 1e-4 of the output range; FP16 (float16 weights) within 1e-2, with the
same top-1 class on (nearly) every input.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekit.tflite import TFLiteConfig, convert
from tests.edgekit.tflite.harness import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    relative_error,
    run_litert,
    run_litert_batches,
    run_ort,
)


def _compare(model, converted, feeds, output):
    want = run_ort(model, feeds)[output]
    got = run_litert_batches(converted, feeds)[output]
    agreement = float((got.argmax(axis=1) == want.argmax(axis=1)).mean())
    return relative_error(got, want), agreement, got


@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_digits_cnn(digits, variant):
    model = onnx.load(str(digits / "cnn.onnx"))
    test = np.load(digits / "cnn_test.npz")
    converted = convert(model, TFLiteConfig(variant=variant))
    error, agreement, logits = _compare(model, converted, {"input": test["input"]}, "logits")
    accuracy = float((logits.argmax(axis=1) == test["label"]).mean())
    assert converted.inputs[0].layout == "NHWC"
    assert converted.inputs[0].shape == (1, 8, 8, 1)
    if variant == "fp32":
        assert error <= FP32_TOLERANCE
        assert agreement == 1.0
    else:
        assert error <= FP16_TOLERANCE
        assert agreement >= 0.99
        assert len(converted.data) < 0.55 * len(convert(model).data)
    assert accuracy >= 0.985  # ONNX Runtime scores 98.89 % (examples/digits/README.md)


@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_digits_mlp_with_its_label_lookup(digits, variant):
    model = onnx.load(str(digits / "mlp.onnx"))
    test = np.load(digits / "mlp_test.npz")
    converted = convert(model, TFLiteConfig(variant=variant))
    feeds = {"input": test["input"]}
    want = run_ort(model, feeds)
    got = run_litert_batches(converted, feeds)
    assert got["label"].dtype == np.int64
    if variant == "fp32":
        assert relative_error(got["probabilities"], want["probabilities"]) <= FP32_TOLERANCE
        np.testing.assert_array_equal(got["label"], want["label"])
    else:
        assert relative_error(got["probabilities"], want["probabilities"]) <= FP16_TOLERANCE
        assert (got["label"] == want["label"]).mean() >= 0.99


@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_ppocr_orientation_classifier(ppocr_cls, ppocr_cls_inputs, variant):
    model = onnx.load(str(ppocr_cls))
    converted = convert(model, TFLiteConfig(variant=variant, input_shapes={"x": (1, 3, 48, 192)}))
    output = model.graph.output[0].name
    error, agreement, probabilities = _compare(model, converted, {"x": ppocr_cls_inputs["inputs"]}, output)
    assert error <= (FP32_TOLERANCE if variant == "fp32" else FP16_TOLERANCE)
    assert agreement == 1.0
    assert (probabilities.argmax(axis=1) == ppocr_cls_inputs["label"]).mean() >= 0.9


def test_ppocr_classifier_keeps_nchw_input_by_option(ppocr_cls, ppocr_cls_inputs):
    model = onnx.load(str(ppocr_cls))
    config = TFLiteConfig(io_layout="onnx", input_shapes={"x": (1, 3, 48, 192)})
    converted = convert(model, config)
    assert converted.inputs[0].layout == "NCHW"
    assert converted.inputs[0].shape == (1, 3, 48, 192)
    assert converted.op_counts["TRANSPOSE"] == 1  # at the edge, and nowhere else
    error, _, _ = _compare(model, converted, {"x": ppocr_cls_inputs["inputs"][:4]}, model.graph.output[0].name)
    assert error <= FP32_TOLERANCE


def test_a_static_batch_other_than_one(digits):
    model = onnx.load(str(digits / "cnn.onnx"))
    converted = convert(model, TFLiteConfig(batch_size=5))
    assert converted.inputs[0].shape == (5, 8, 8, 1)
    x = np.load(digits / "cnn_test.npz")["input"][:5]
    got = run_litert(converted, {"input": x})["logits"]
    assert relative_error(got, run_ort(model, {"input": x})["logits"]) <= FP32_TOLERANCE
