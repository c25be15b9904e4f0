"""Swapping the served model under load: no request fails or is dropped, and new requests see the new model."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.model import load
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings
from tests.runtime.server.conftest import DIGITS, thread_server
from tests.runtime.server.raw_http import connect


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """The digits MLP packed as 1.0.0 and as 2.0.0."""
    out = tmp_path_factory.mktemp("versions")
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    return [
        pack_source(str(DIGITS / "mlp.onnx"), out, BundleOptions(name="digits-mlp", version=v), data).path
        for v in ("1.0.0", "2.0.0")
    ]


def test_a_swap_under_load_fails_no_request(versions):
    first, second = (load(path) for path in versions)
    app = create_app(first, ServerSettings(port=0, concurrency=2))
    rows = np.load(DIGITS / "mlp_test.npz")["input"]
    answered, failures, stop = [0], [], threading.Event()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = 0
            while not stop.is_set():
                response = http.post("/predict", json={"features": rows[i % len(rows)].tolist()})
                i += 1
                if response.status_code == 200:
                    answered[0] += 1
                else:
                    failures.append(response.text)

    with thread_server(app, app.settings) as (url, _server):
        workers = [threading.Thread(target=client, args=(url,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(0.5)
            before = answered[0]
            for model in (second, first, second):  # three swaps while four clients keep sending
                app.swap_from_thread(model)
                time.sleep(0.3)
            after = answered[0]
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        metadata = httpx.get(f"{url}/v2/models/digits-mlp").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert not failures, failures[:3]
    assert after - before > 100  # the load really ran across the swaps
    assert metadata["versions"] == ["2.0.0"]
    assert 'version="2.0.0"' in metrics
    assert 'version="1.0.0"' not in metrics


def fixed_batch_model(path):
    """y = x, with a batch axis fixed at 1 (micro-batching cannot serve it)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["y"])], "fixed", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_model_the_settings_cannot_serve_is_refused_and_nothing_changes(versions, tmp_path):
    first = load(versions[0])
    app = create_app(first, ServerSettings(port=0, concurrency=1, max_batch=4))
    try:
        with pytest.raises(ConfigError, match="--max-batch"):
            app.swap(load(fixed_batch_model(tmp_path / "fixed.onnx")))
        assert app.model is first
    finally:
        app.close()


def test_a_request_in_flight_at_a_swap_counts_for_the_model_it_started_on(versions):
    first, second = (load(path) for path in versions)
    started, gate = threading.Event(), threading.Event()
    real_run = first.run

    def held(feeds):
        started.set()
        gate.wait(10)
        return real_run(feeds)

    first.run = held  # the first model's one request is held until the swap is done
    app = create_app(first, ServerSettings(port=0, concurrency=2))
    row = np.load(DIGITS / "mlp_test.npz")["input"][0].tolist()
    statuses = []
    with thread_server(app, app.settings) as (url, _server):
        held_request = threading.Thread(
            target=lambda: statuses.append(httpx.post(f"{url}/predict", json={"features": row}, timeout=30).status_code)
        )
        held_request.start()
        assert started.wait(10)
        app.swap_from_thread(second)
        gate.set()
        held_request.join(30)
        assert statuses == [200]
        assert app.inference_counts == (0, 0, 0.0)  # the new model's health has none of the old one's requests
        assert httpx.post(f"{url}/predict", json={"features": row}, timeout=30).status_code == 200
        assert app.inference_counts[:2] == (1, 0)


def test_4xx_answers_count_apart_for_the_model_their_request_started_on(versions):
    first, second = (load(path) for path in versions)
    app = create_app(first, ServerSettings(port=0, concurrency=1, max_body_bytes=1 << 20, body_timeout=10))
    row = np.load(DIGITS / "mlp_test.npz")["input"][0].tolist()
    with thread_server(app, app.settings) as (url, _server), httpx.Client(base_url=url, timeout=30) as http:
        statuses = [
            http.post("/predict", json={"features": [row]}).status_code,
            http.post("/predict", json={"features": [[0.5]]}).status_code,  # the wrong shape
            http.post("/invocations", content=b"{").status_code,  # not JSON
            http.post("/v2/models/digits-mlp/infer", json={"inputs": []}).status_code,
            http.post("/v2/models/someone-else/infer", json={}).status_code,  # not this model
            http.post("/predict", content=b" " * (2 << 20)).status_code,  # over --max-body-bytes
            http.get("/predict").status_code,  # an inference route, the wrong method
            http.get("/nowhere").status_code,  # not an inference route: not counted
            http.get("/v2/models/digits-mlp").status_code,
        ]
        assert statuses == [200, 400, 400, 400, 404, 413, 405, 404, 200]
        assert app.client_error_count == 6
        assert app.inference_counts[:2] == (7, 0)  # inference_counts is as it was: 4xx are not errors there

        # a request whose body is still arriving at the swap counts for the model it started on
        with connect(url) as held:
            held.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{"feat')
            deadline = time.monotonic() + 10
            while app.budget.reserved == 0 and time.monotonic() < deadline:  # it is in, and reading its body
                time.sleep(0.01)
            app.swap_from_thread(second)
            held.sendall(b'ures": 1}')  # the rest: valid JSON, not a valid input
            assert held.recv(65536).startswith(b"HTTP/1.1 400")
        assert app.client_error_count == 0
        assert http.post("/predict", json={"features": [[0.5]]}).status_code == 400
        assert app.client_error_count == 1
        assert app.inference_counts[:2] == (1, 0)
