"""The memory budget: its queue on its own, in the app, and a real server's peak memory under the attack that
found it (large JSON bodies at once, which took the process from 86 MB to 824 MB).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from edgekit_runtime import load
from edgekit_runtime.errors import HttpError
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.budget import MIB, MemoryBudget, body_cost, json_cost, upfront_cost
from edgekit_runtime.server.settings import DEFAULT_MAX_BODY, ServerSettings

from .conftest import DIGITS, asgi, thread_server
from .process import ServeProcess
from .raw_http import RawClient, connect, request

#: examples/raspberrypi/edgekit-runtime.service: MemoryMax=512M
UNIT_MEMORY_MAX = 512 << 20
ROWS = np.load(DIGITS / "mlp_test.npz")["input"]
HEADER_LENGTH = "Inference-Header-Content-Length"


def run(coroutine):
    return asyncio.run(coroutine)


def test_requests_past_the_budget_wait_their_turn_first_come_first_served():
    async def go():
        budget = MemoryBudget(100, wait=5)
        first = await budget.reserve(60)
        order = []

        async def later(name, amount):
            reservation = await budget.reserve(amount)
            order.append(name)
            return reservation

        big = asyncio.create_task(later("big", 50))
        small = asyncio.create_task(later("small", 10))  # would fit now, but the big one asked first
        await asyncio.sleep(0.05)
        assert order == []
        first.release()
        held = await asyncio.gather(big, small)
        assert order == ["big", "small"]
        assert budget.reserved == 60
        for reservation in held:
            reservation.release()
        assert budget.reserved == 0
        assert budget.high_water == 60

    run(go())


def test_a_request_that_waits_past_memory_wait_gets_503_with_retry_after():
    async def go():
        budget = MemoryBudget(100, wait=0.05)
        held = await budget.reserve(90)
        with pytest.raises(HttpError) as refused:
            await budget.reserve(20)
        assert refused.value.status == 503
        assert refused.value.headers == ((b"retry-after", b"1"),)
        assert "waited 0.05 s" in refused.value.message
        assert budget.reserved == 90
        held.release()
        assert (await budget.reserve(100)).amount == 100  # nothing left behind in the queue

    run(go())


def test_more_than_the_whole_budget_is_a_413_at_once():
    async def go():
        budget = MemoryBudget(100 * MIB, wait=5)
        with pytest.raises(HttpError) as refused:
            await budget.reserve(101 * MIB)
        assert refused.value.status == 413
        assert "needs 101 MiB to decode, more than the server's whole memory budget (100 MiB" in refused.value.message

    run(go())


def test_growing_takes_free_room_or_gets_503_and_never_waits_and_shrinking_lets_the_next_in():
    async def go():
        budget = MemoryBudget(100, wait=5)
        one = await budget.reserve(40)
        two = await budget.reserve(40)
        one.fit(55)  # room now: 15 of 20 free
        with pytest.raises(HttpError) as busy:
            two.fit(50)
        assert busy.value.status == 503
        with pytest.raises(HttpError) as never:
            two.fit(101)
        assert never.value.status == 413
        assert (one.amount, two.amount, budget.reserved) == (55, 40, 95)
        waiting = asyncio.create_task(budget.reserve(30))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        one.fit(10)  # the inputs are checked: the body and its JSON are gone
        third = await asyncio.wait_for(waiting, 1)
        assert budget.reserved == 80
        for reservation in (one, two, third):
            reservation.release()
            reservation.release()  # twice is once
        assert budget.reserved == 0

    run(go())


def test_a_request_cancelled_while_waiting_leaves_nothing_behind():
    async def go():
        budget = MemoryBudget(100, wait=5)
        held = await budget.reserve(100)
        waiting = asyncio.create_task(budget.reserve(50))
        behind = asyncio.create_task(budget.reserve(50))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the server stops, or the client's task is cancelled
        with pytest.raises(asyncio.CancelledError):
            await waiting
        held.release()
        assert (await asyncio.wait_for(behind, 1)).amount == 50
        assert budget.reserved == 50

    run(go())


def test_the_json_estimate_follows_structure_not_just_length():
    floats = orjson.dumps([0.5] * 1000)
    lists = b"[" + b"[]," * 999 + b"[]]"
    assert json_cost(lists) > 2 * json_cost(floats) / len(floats) * len(lists)
    assert json_cost(b'["\\u00e9"]') > json_cost(b'["e"]')
    assert body_cost(1000, b"{}") < json_cost(b" " * 1000)  # binary tensor data is cheaper than JSON
    assert upfront_cost(DEFAULT_MAX_BODY) <= ServerSettings(port=0).memory_budget


def serving(**changes):
    settings = ServerSettings(port=0, concurrency=1, **changes)
    return create_app(load(DIGITS / "mlp.onnx"), settings), settings


def test_concurrent_bodies_past_the_budget_queue_and_all_succeed():
    body = orjson.dumps({"features": np.resize(ROWS, (2000, 64)).tolist()})  # 0.6 MiB: 10 MiB reserved up front
    app, settings = serving(max_body_bytes=1 << 20, memory_budget=24 << 20)
    statuses = []
    with thread_server(app, settings) as (url, _):

        def post() -> None:
            with RawClient(url, timeout=60) as client:
                statuses.append(client.send(request(b"POST", b"/predict", [], body)).status)

        clients = [threading.Thread(target=post) for _ in range(8)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
    assert statuses == [200] * 8
    assert upfront_cost(len(body)) < app.budget.high_water <= 24 << 20  # more than one at once, never past it
    assert app.budget.reserved == 0


def test_a_request_that_cannot_get_memory_in_time_gets_503_which_is_not_a_model_error():
    app, settings = serving(max_body_bytes=1 << 20, memory_budget=20 << 20, memory_wait=0.2, body_timeout=10)
    with thread_server(app, settings) as (url, _), connect(url) as stalled:
        # a body that is still arriving holds its share of the budget: 1 MiB declared, 17 MiB and more reserved
        stalled.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")
        deadline = time.monotonic() + 10
        while app.budget.reserved == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        response = httpx.post(f"{url}/invocations", content=b"[" + b"0," * 200_000 + b"0]", timeout=10)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "the server is busy: requests in progress hold its memory budget (20 MiB" in response.json()["message"]
    assert app.inference_counts[1] == 0  # shedding load is not the model failing: no rollback for it
    assert app.client_error_count == 0


def test_a_json_body_that_would_decode_past_the_whole_budget_gets_413():
    app, _ = serving(max_body_bytes=1 << 20, memory_budget=20 << 20)
    try:
        lists = b'{"features": [' + b"[]," * 340_000 + b"[]]}"  # 1 MiB of empty lists: about 42 MiB to decode
        response = asgi(app, "POST", "/predict", content=lists)
    finally:
        app.close()
    assert response.status_code == 413
    message = response.json()["error"]
    assert re.search(r"needs 4\d MiB to decode, more than the server's whole memory budget \(20 MiB", message), message
    assert app.budget.reserved == 0


def test_the_budget_is_given_back_after_every_kind_of_answer():
    app, _ = serving(max_body_bytes=1 << 20)
    row = {"features": [ROWS[0].tolist()]}
    head = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "parameters": {}}]})
    try:
        answers = [
            asgi(app, "POST", "/predict", json=row).status_code,
            asgi(app, "POST", "/predict", content=b"{").status_code,
            asgi(app, "POST", "/predict", content=b"x" * (2 << 20)).status_code,
            asgi(app, "POST", "/v2/models/mlp/infer", content=head, headers={HEADER_LENGTH: "9"}).status_code,
            asgi(app, "POST", "/invocations", json={"instances": [ROWS[0].tolist()]}).status_code,
            asgi(app, "GET", "/metrics").status_code,
        ]
    finally:
        app.close()
    assert answers == [200, 400, 413, 400, 200, 200]
    assert app.budget.reserved == 0
    assert app.metrics.memory_reserved.values[()] == 0


def memory(pid: int, key: str = "VmHWM") -> int:
    """A process's resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def largest_json_body(limit: int) -> bytes:
    """A /predict body just under ``limit`` bytes, as dense as JSON numbers usually get: digits to one decimal."""
    rows = np.round(ROWS.astype(float), 1)  # "0.4,": four bytes a value, as dense as JSON floats get
    body = orjson.dumps({"features": rows.tolist()})
    count = int(len(ROWS) * (limit - 64) / len(body))
    body = orjson.dumps({"features": np.resize(rows, (count, 64)).tolist()})
    assert limit - (1 << 20) < len(body) <= limit, len(body)
    return body


@pytest.mark.slow
def test_sixteen_maximum_size_json_bodies_at_once_stay_under_the_units_memory_max(tmp_path, signed_bundle, keys):
    body = largest_json_body(DEFAULT_MAX_BODY)
    server = ServeProcess(
        [str(signed_bundle), "--port", "0", "--trust", str(keys[1]), "--no-telemetry"], tmp_path / "stderr.log"
    )  # every limit at its default
    url = server.wait_ready()
    statuses: list[int] = []
    try:

        def post() -> None:
            with RawClient(url, timeout=120) as client:
                statuses.append(client.send(request(b"POST", b"/predict", [], body)).status)

        clients = [threading.Thread(target=post) for _ in range(16)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(180)
        peak = memory(server.proc.pid)
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        assert server.stop() == 0, server.stderr()
    print(f"16 x {len(body) / MIB:.1f} MiB JSON bodies: peak RSS {peak / MIB:.0f} MiB; answers {sorted(statuses)}")
    assert peak < UNIT_MEMORY_MAX
    assert len(statuses) == 16
    assert set(statuses) <= {200, 503}  # a 503 only if one waited past --memory-wait on a busy machine
    assert statuses.count(200) >= 8
    assert "edgekit_memory_reserved_bytes 0" in metrics
    assert "Traceback" not in server.stderr()


COST_CASES = {
    "short floats": b"0.5,",
    "one-digit ints": b"0,",
    "empty lists": b"[],",
    "objects": b'{"":0},',
    "strings": b'"ab",',
}


@pytest.mark.slow
@pytest.mark.parametrize("unit", COST_CASES.values(), ids=COST_CASES.keys())
def test_the_json_estimate_is_never_under_a_real_servers_peak(tmp_path, unit):
    # a fresh server for each kind: a server that answered before keeps freed memory and would hide the peak
    body = b'{"features": [[' + unit * ((4 << 20) // len(unit)) + b"0]]}"
    server = ServeProcess(
        [str(DIGITS / "mlp.onnx"), "--port", "0", "--no-telemetry", "--max-body-bytes", str(8 << 20)],
        tmp_path / "stderr.log",
    )
    url = server.wait_ready()
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.post("/predict", json={"features": [[0.5] * 64]}).status_code == 200
            before = memory(server.proc.pid, "VmRSS")
            Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")  # VmHWM from here
            assert http.post("/predict", content=body).status_code in {200, 400}
            peak = memory(server.proc.pid) - before
    finally:
        server.stop()
    assert json_cost(body) >= peak, (json_cost(body) / len(body), peak / len(body))


def test_binary_tensor_data_costs_little():
    x = np.resize(ROWS, (4000, 64)).astype(np.float32)
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
    head = json.dumps({"inputs": [tensor]}).encode()
    assert upfront_cost(len(head) + x.nbytes, len(head)) < upfront_cost(len(head) + x.nbytes) / 4
