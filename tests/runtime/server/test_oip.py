"""Open Inference Protocol v2 over a real server: tritonclient with its defaults, JSON both ways, raw bodies."""

from __future__ import annotations

import gzip
import json
import struct

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from edgekit_runtime import load
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings

from .conftest import DIGITS, thread_server

MLP_X = np.load(DIGITS / "mlp_test.npz")["input"][:12].astype(np.float32)
CNN_X = np.load(DIGITS / "cnn_test.npz")["input"][:5].astype(np.float32)


def reference(model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(DIGITS / model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": x}), strict=True))


@pytest.fixture(scope="module")
def cnn_server():
    """The digits CNN (a plain .onnx) on uvicorn in a thread."""
    settings = ServerSettings(port=0, concurrency=2)
    app = create_app(load(DIGITS / "cnn.onnx"), settings)
    with thread_server(app, settings) as (address, server):
        yield address, server


def client_for(address: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(address.removeprefix("http://"))


def infer(client, model: str, x: np.ndarray, outputs: list[str], *, binary: bool = True):
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = [triton.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    return client.infer(model, [tensor], outputs=wanted, request_id="req-7")


def test_tritonclient_defaults_get_the_mlp_outputs_onnxruntime_gives(mlp_server):
    client = client_for(mlp_server.url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits-mlp")
    assert client.is_model_ready("digits-mlp", "1.0.0")
    assert not client.is_model_ready("someone-else")
    tensor = triton.InferInput("input", list(MLP_X.shape), "FP32")
    tensor.set_data_from_numpy(MLP_X)  # binary by default
    result = client.infer(
        "digits-mlp",
        [tensor],
        outputs=[triton.InferRequestedOutput("label"), triton.InferRequestedOutput("probabilities")],
    )
    want = reference("mlp.onnx", MLP_X)
    assert result.as_numpy("label").dtype == np.int64
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"], rtol=1e-6, atol=1e-7)
    assert result.get_response()["model_name"] == "digits-mlp"
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 12 * 8


def test_tritonclient_with_no_outputs_named_gets_every_output_in_binary(mlp_server):
    client = client_for(mlp_server.url)
    tensor = triton.InferInput("input", list(MLP_X.shape), "FP32")
    tensor.set_data_from_numpy(MLP_X)
    result = client.infer("digits-mlp", [tensor], model_version="1.0.0")
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "probabilities"]
    np.testing.assert_array_equal(result.as_numpy("label"), reference("mlp.onnx", MLP_X)["label"])


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_on_the_cnn_in_binary_and_json(cnn_server, binary):
    client = client_for(cnn_server[0])
    result = infer(client, "cnn", CNN_X, ["logits"], binary=binary)
    np.testing.assert_allclose(result.as_numpy("logits"), reference("cnn.onnx", CNN_X)["logits"], rtol=1e-5, atol=1e-6)
    output = result.get_response()["outputs"][0]
    assert ("data" in output) is not binary
    assert result.get_response()["id"] == "req-7"


def test_tritonclient_json_both_ways_on_the_mlp(mlp_server):
    result = infer(client_for(mlp_server.url), "digits-mlp", MLP_X, ["probabilities", "label"], binary=False)
    want = reference("mlp.onnx", MLP_X)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities", "label"]
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"], rtol=1e-6, atol=1e-7)


def test_metadata_as_tritonclient_reads_it(mlp_server):
    client = client_for(mlp_server.url)
    server = client.get_server_metadata()
    assert server["name"] == "edgekit-runtime"
    assert "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata("digits-mlp")
    assert meta == client.get_model_metadata("digits-mlp", "1.0.0")
    assert meta["name"] == "digits-mlp"
    assert meta["versions"] == ["1.0.0"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["parameters"] == {"devices": ["CPUExecutionProvider"]}  # what the engine runs on
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
    ]


def test_tritonclient_sees_errors_with_their_messages(mlp_server):
    client = client_for(mlp_server.url)
    with pytest.raises(InferenceServerException, match="model 'nope' is not served here"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match=r"no version '2\.0\.0'"):
        client.get_model_metadata("digits-mlp", "2.0.0")
    tensor = triton.InferInput("input", [2, 63], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 63), np.float32))
    with pytest.raises(InferenceServerException, match=r"expects shape \[batch, 64\] \(float32\), got \[2, 63\]"):
        client.infer("digits-mlp", [tensor])
    wrong = triton.InferInput("input", [1, 64], "FP64")
    wrong.set_data_from_numpy(np.zeros((1, 64), np.float64))
    with pytest.raises(InferenceServerException, match="expects datatype FP32, got FP64"):
        client.infer("digits-mlp", [wrong])


def test_tritonclient_compressed_requests(mlp_server):
    client = client_for(mlp_server.url)
    tensor = triton.InferInput("input", list(MLP_X.shape), "FP32")
    tensor.set_data_from_numpy(MLP_X)
    for algorithm in ("gzip", "deflate"):
        result = client.infer("digits-mlp", [tensor], request_compression_algorithm=algorithm)
        np.testing.assert_array_equal(result.as_numpy("label"), reference("mlp.onnx", MLP_X)["label"])


def binary_request(x: np.ndarray, *, header_extra=None, data=None, outputs=None):
    raw = x.tobytes() if data is None else data
    header = {
        "inputs": [
            {"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
        ]
    }
    if outputs is not None:
        header["outputs"] = outputs
    header.update(header_extra or {})
    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def test_raw_binary_response_layout_and_headers(mlp_server):
    body, headers = binary_request(MLP_X[:2], outputs=[{"name": "label", "parameters": {"binary_data": True}}])
    with httpx.Client(base_url=mlp_server.url, trust_env=False) as http:
        response = http.post("/v2/models/digits-mlp/infer", content=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    assert head["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}}
    ]
    np.testing.assert_array_equal(
        np.frombuffer(response.content[length:], "<i8"), reference("mlp.onnx", MLP_X[:2])["label"]
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b, h: (b[:-5], h), "declares binary_data_size 256 but only 251 bytes"),
        (lambda b, h: (b + b"xx", h), "carries 258 bytes after the JSON header but the inputs' binary_data_size"),
        (lambda b, _: (b, {}), "body is not valid JSON: "),
        (lambda b, _: (b, {"Inference-Header-Content-Length": "-3"}), "Inference-Header-Content-Length is '-3'"),
        (lambda b, _: (b, {"Inference-Header-Content-Length": "99999"}), "must be the JSON header's length"),
        (lambda b, _: (b, {"Inference-Header-Content-Length": "12"}), "JSON header (the body's first 12 bytes, by"),
    ],
)
def test_bad_binary_requests_say_what_was_expected(mlp_server, mutate, message):
    body, headers = mutate(*binary_request(MLP_X[:1]))
    with httpx.Client(base_url=mlp_server.url, trust_env=False) as http:
        response = http.post("/v2/models/digits-mlp/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_json_data_may_be_nested_or_flat(mlp_server):
    with httpx.Client(base_url=mlp_server.url, trust_env=False) as http:
        answers = []
        for data in (MLP_X[:3].tolist(), MLP_X[:3].ravel().tolist()):
            doc = {"id": "n", "inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32", "data": data}]}
            response = http.post("/v2/models/digits-mlp/versions/1.0.0/infer", json=doc)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            answers.append(response.json())
    assert answers[0] == answers[1]
    assert answers[0]["id"] == "n"
    assert answers[0]["model_version"] == "1.0.0"
    assert answers[0]["outputs"][0]["data"] == reference("mlp.onnx", MLP_X[:3])["label"].tolist()


def test_bytes_tensors_round_trip_through_the_binary_codec():
    from edgekit_runtime.server.oip_tensors import decode_inputs, encode_output

    words = np.array([["héllo", ""], ["a", "bcd"]], dtype=object)
    doc, raw = encode_output("w", words.astype(str), binary=True)
    assert doc["datatype"] == "BYTES"
    assert raw[:4] == struct.pack("<I", len("héllo".encode()))
    header = {
        "inputs": [{"name": "w", "shape": [2, 2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]
    }
    (tensor,) = decode_inputs(header, raw, has_header_length=True)
    assert tensor.array.tolist() == words.tolist()
    flags = {"inputs": [{"name": "b", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}}]}
    assert decode_inputs(flags, b"\x01\x00\x07", has_header_length=True)[0].array.tolist() == [True, False, True]


def test_a_gzip_bomb_is_refused_by_the_size_limit(mlp_server):
    bomb = gzip.compress(b" " * (4 << 20))  # 4 MiB of spaces, over the 1 MiB limit once inflated
    with httpx.Client(base_url=mlp_server.url, trust_env=False) as http:
        response = http.post("/v2/models/digits-mlp/infer", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompresses to over 1048576 bytes" in response.json()["error"]
