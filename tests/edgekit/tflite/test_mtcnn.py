"""MTCNN's R-Net and O-Net (facenet-pytorch 2.6.0's weights, exported with edgekit's PyTorch importer) in LiteRT.

FP32 within 1e-4 of each output's range of onnxruntime's outputs; FP16 (float16 weights) within 2e-2 and agreeing
on face or not for at least 99 % of the crops; INT8 (scales from the static INT8 pass)
agreeing with the FP32 ONNX model on face or not for at least 99 % of 300 crops (faces and non-faces from
LFW, pieces of photos), and as right about faces as ONNX Runtime is.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekit.tflite import TFLiteConfig, convert
from edgekit.tflite.calibrate import static_qdq
from tests.edgekit.tflite.harness import FP16_TOLERANCE, FP32_TOLERANCE, relative_error, run_litert_batches, run_ort
from tests.models import cached, tools_module

SIZES = {"rnet": 24, "onet": 48}


@pytest.fixture(scope="module", params=["rnet", "onet"])
def net(request):
    """(name, ONNX model, 300 test crops, whether each is a face, 4 calibration batches of 16)."""
    name = request.param
    mtcnn_data = tools_module("mtcnn_data")
    lfw = cached("lfw")
    crops, faces = mtcnn_data.crops(lfw, SIZES[name], 300, np.random.default_rng(0))
    calib, _ = mtcnn_data.crops(lfw, SIZES[name], 64, np.random.default_rng(1))
    batches = [{"input": calib[i : i + 16]} for i in range(0, 64, 16)]
    return name, onnx.load(str(cached(name))), crops, faces, batches


def _probability(name: str) -> str:
    return tools_module("mtcnn_nets").PROBABILITY_OUTPUT[name]


def test_fp32_matches_onnxruntime_on_every_output(net):
    name, model, crops, _, _ = net
    converted = convert(model)
    want = run_ort(model, {"input": crops})
    got = run_litert_batches(converted, {"input": crops})
    assert converted.inputs[0].layout == "NHWC"
    assert converted.inputs[0].shape == (1, SIZES[name], SIZES[name], 3)
    assert set(got) == set(want) == {f"output_{i}" for i in range(len(want))}
    for output, reference in want.items():
        assert relative_error(got[output], reference) <= FP32_TOLERANCE, output


def test_fp16_stays_close_and_agrees_on_faces(net):
    name, model, crops, _, _ = net
    converted = convert(model, TFLiteConfig(variant="fp16"))
    want = run_ort(model, {"input": crops})
    got = run_litert_batches(converted, {"input": crops})
    for output, reference in want.items():
        assert relative_error(got[output], reference) <= FP16_TOLERANCE, output
    probability = _probability(name)
    assert float((got[probability].argmax(axis=1) == want[probability].argmax(axis=1)).mean()) >= 0.99
    assert len(converted.data) < 0.6 * len(convert(model).data)  # float16 weights: about half the file


def test_int8_agrees_on_faces(net):
    name, model, crops, faces, batches = net
    converted = convert(model, TFLiteConfig(variant="int8"), calibration=batches, qdq=static_qdq(model, batches))
    probability = _probability(name)
    want = run_ort(model, {"input": crops})[probability]
    got = run_litert_batches(converted, {"input": crops})[probability]
    agreement = float((got.argmax(axis=1) == want.argmax(axis=1)).mean())
    assert agreement >= 0.99
    onnx_right = float(((want[:, 1] > 0.5) == faces).mean())
    int8_right = float(((got[:, 1] > 0.5) == faces).mean())
    assert onnx_right >= 0.95
    assert int8_right >= onnx_right - 0.01
    assert converted.details["activation_scales"]["qdq"] > 0
    assert len(converted.data) < 0.3 * len(convert(model).data)
