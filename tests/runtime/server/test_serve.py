"""``edgekit-runtime serve``: the ready line, refusals at start, a graceful stop, TCP_NODELAY."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit_runtime import load
from edgekit_runtime.cli import parse
from edgekit_runtime.cli.serve import load_for_serving
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings
from tests.runtime.tamper import re_pinned_with_other_golden_outputs, tampered, unsigned

from .conftest import DIGITS, ServeProcess, asgi, thread_server

READY = re.compile(r"^serving digits-mlp 1\.0\.0 on http://127\.0\.0\.1:(\d+) \(onnxruntime, CPUExecutionProvider\)$")


def fixed_batch_model(path):
    """``y = relu(x)`` for x of shape [1, 4]: no free batch axis."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def slow_model(path, width=256, layers=48):
    """A stack of dense tanh layers: about a second for a few thousand samples, instant for one."""
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for i in range(layers):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes += [
            helper.make_node("MatMul", [name, f"w{i}"], [f"m{i}"]),
            helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]),
        ]
        name = f"t{i}"
    nodes.append(helper.make_node("Identity", [name], ["y"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])
    graph = helper.make_graph(nodes, "slow", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def run_cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit_runtime.cli", "serve", *map(str, args), "--no-telemetry"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, signed_bundle, keys):
    """Every refused start, run side by side: case → (exit code, stdout, stderr)."""
    tmp = tmp_path_factory.mktemp("refusals")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    cases = {
        "tampered": [tampered(signed_bundle, tmp / "t.edgebundle"), "--port", "0"],
        "self-test": [re_pinned_with_other_golden_outputs(signed_bundle, tmp / "g.edgebundle"), "--port", "0"],
        "unsigned": [unsigned(signed_bundle, tmp / "u.edgebundle"), "--port", "0", "--trust", keys[1]],
        "fixed-batch": [fixed_batch_model(tmp / "fixed.onnx"), "--port", "0", "--max-batch", "8"],
        "port-taken": [DIGITS / "mlp.onnx", "--port", port],
        "bad-port": [DIGITS / "mlp.onnx", "--port", "70000"],
        "delay-alone": [DIGITS / "mlp.onnx", "--port", "0", "--max-delay-ms", "5"],
        "missing": [tmp / "nowhere.edgebundle", "--port", "0"],
    }
    procs = {case: run_cli(*args) for case, args in cases.items()}
    try:
        return {case: (proc.wait(60), *proc.communicate()) for case, proc in procs.items()}
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("tampered", 3, "error: member 'model.onnx' does not match its SHA-256 in the manifest"),
        ("self-test", 3, "error: bundle 'g.edgebundle' fails its self-test on this device (probabilities:"),
        ("unsigned", 3, "error: bundle is unsigned and this device requires a signature"),
        ("fixed-batch", 2, "error: --max-batch needs every input and output to have a free batch axis"),
        ("port-taken", 2, "error: cannot listen on 127.0.0.1:"),
        ("bad-port", 2, "error: argument --port: 70000 is not a TCP port"),
        ("delay-alone", 2, "error: --max-delay-ms needs --max-batch"),
        ("missing", 3, "error: bundle '"),
    ],
)
def test_a_refused_start_is_one_error_line_and_a_non_zero_exit(refusals, case, code, message):
    returncode, stdout, stderr = refusals[case]
    assert returncode == code
    assert stdout == ""
    assert stderr.count("\n") == 1
    assert stderr.startswith(message)
    assert "Traceback" not in stderr


def test_allow_unsigned_serves_an_unsigned_bundle_despite_trusted_keys(signed_bundle, keys, tmp_path):
    bundle = unsigned(signed_bundle, tmp_path / "u.edgebundle")
    args = parse(["serve", str(bundle), "--trust", str(keys[1]), "--allow-unsigned"])
    model = load_for_serving(args, ServerSettings(port=0))
    assert model.signer is None
    assert model.self_test is not None


def test_port_zero_prints_the_real_port_in_the_ready_line(mlp_server):
    match = READY.match(mlp_server.ready_line)
    assert match, mlp_server.ready_line
    assert int(match.group(1)) not in {0, 8080}
    assert mlp_server.url == f"http://127.0.0.1:{match.group(1)}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_request_in_flight_finish_and_exits_0(tmp_path_factory, sig):
    folder = tmp_path_factory.mktemp("slow")
    model = slow_model(folder / "slow.onnx")
    server = ServeProcess([str(model), "--port", "0", "--concurrency", "1"], folder / "stderr.log")
    address = server.wait_ready()
    x = np.random.default_rng(1).standard_normal((3000, 256)).astype(np.float32)
    head = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    answer: dict[str, httpx.Response] = {}

    def post() -> None:
        with httpx.Client(base_url=address, trust_env=False, timeout=60) as http:
            answer["r"] = http.post(
                "/v2/models/slow/infer",
                content=head + x.tobytes(),
                headers={"Inference-Header-Content-Length": str(len(head))},
            )

    client = threading.Thread(target=post)
    client.start()
    with httpx.Client(base_url=address, trust_env=False) as http:
        deadline = time.monotonic() + 30
        while "edgekit_inflight_requests 2" not in http.get("/metrics").text:  # the slow request, and this scrape
            assert time.monotonic() < deadline, "the slow request never arrived"
            time.sleep(0.01)
    time.sleep(0.2)  # its body is read by now: it is running
    started = time.monotonic()
    code = server.stop(sig)
    client.join(60)
    assert code == 0, server.stderr()
    assert time.monotonic() - started > 0.1  # it waited for the request
    response = answer["r"]
    assert response.status_code == 200
    length = int(response.headers["inference-header-content-length"])
    y = np.frombuffer(response.content[length:], np.float32).reshape(3000, 256)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(y[:2], session.run(None, {"x": x[:2]})[0], rtol=1e-4, atol=1e-5)
    assert "Traceback" not in server.stderr()


def test_accepted_connections_have_tcp_nodelay():
    settings = ServerSettings(port=0, concurrency=1)
    app = create_app(load(DIGITS / "mlp.onnx"), settings)
    with thread_server(app, settings) as (address, server), httpx.Client(base_url=address, trust_env=False) as http:
        assert http.get("/v2/health/live").status_code == 200  # keep-alive: the connection stays open
        connections = list(server.server_state.connections)
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_body_that_stops_part_way_gets_a_408_saying_how_much_came():
    settings = ServerSettings(port=0, concurrency=1, body_timeout=0.3)
    app = create_app(load(DIGITS / "mlp.onnx"), settings)
    with thread_server(app, settings) as (address, _):
        host, port = address.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            conn.sendall(head + b'{"features"')
            time.sleep(0.05)
            conn.sendall(b": [[")  # a second chunk: the body is arriving, then it stops
            answer = b""
            while chunk := conn.recv(65536):  # the server closes the connection after the 408
                answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408")
    assert "request body stalled: 15 bytes of the 100 declared arrived" in json.loads(body)["error"]


def test_the_default_body_limit_is_16_mib():
    settings = ServerSettings(port=0, concurrency=1)
    assert settings.max_body_bytes == 16 << 20
    app = create_app(load(DIGITS / "mlp.onnx"), settings)
    try:
        response = asgi(app, "POST", "/predict", content=b" " * ((16 << 20) + 1))
    finally:
        app.close()
    assert response.status_code == 413
    assert "request body is 16777217 bytes, over this server's 16777216-byte limit" in response.json()["error"]
