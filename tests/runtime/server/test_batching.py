"""The micro-batcher: arrival order, splitting, timeouts, and failures that stay with their requests."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from edgekit_runtime import load
from edgekit_runtime.errors import ModelError
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.batching import MicroBatcher
from edgekit_runtime.server.settings import ServerSettings

from .conftest import DIGITS

POISON = 13.0


class FakeModel:
    """Doubles ``x``; remembers every batch it ran; fails on a poison value, or on every call."""

    def __init__(self, *, fail_always: bool = False, flat: bool = False) -> None:
        self.batches: list[list[float]] = []
        self.fail_always = fail_always
        self.flat = flat
        self.closed = False

    async def __call__(self, feeds):
        x = feeds["x"]
        self.batches.append(x[:, 0].tolist())
        await asyncio.sleep(0)
        if self.fail_always or (x == POISON).any():
            raise ModelError("the engine failed")
        if self.flat:  # an output without the batch axis
            return {"y": np.asarray(x.sum())}
        return {"y": x * 2}

    def close(self) -> None:
        self.closed = True


def rows(*values, width=1):
    return {"x": np.array([[v] * width for v in values], dtype=np.float32)}


def gather(batcher, requests):
    async def go():
        tasks = []
        for feeds in requests:
            tasks.append(asyncio.ensure_future(batcher(feeds)))
            await asyncio.sleep(0)  # arrive in this order
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(go())


def test_requests_are_batched_in_arrival_order_and_split_back():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=8, max_delay=5.0)
    requests = [rows(1), rows(2, 3), rows(4), rows(5, 6, 7), rows(8)]
    start = time.perf_counter()
    results = gather(batcher, requests)
    assert time.perf_counter() - start < 2.0  # a full batch runs at once, without waiting out the delay
    assert model.batches == [[1, 2, 3, 4, 5, 6, 7, 8]]
    for feeds, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], feeds["x"] * 2)


def test_a_full_batch_runs_at_once_and_the_rest_after_the_delay():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=4, max_delay=0.05)
    results = gather(batcher, [rows(float(i)) for i in range(6)])
    assert model.batches == [[0, 1, 2, 3], [4, 5]]
    assert [r["y"][0, 0] for r in results] == [0, 2, 4, 6, 8, 10]


def test_a_lone_request_waits_no_longer_than_the_delay():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=64, max_delay=0.05)
    start = time.perf_counter()
    (result,) = gather(batcher, [rows(3)])
    waited = time.perf_counter() - start
    assert 0.04 <= waited < 1.0
    assert model.batches == [[3]]
    assert result["y"].tolist() == [[6]]


def test_a_request_larger_than_the_batch_runs_alone():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=2, max_delay=0.01)
    results = gather(batcher, [rows(1, 2, 3), rows(4)])
    assert model.batches == [[1, 2, 3], [4]]
    assert results[0]["y"][:, 0].tolist() == [2, 4, 6]


def test_a_failing_batch_fails_only_the_request_that_fails_alone():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=2, max_delay=0.01)
    results = gather(batcher, [rows(1), rows(POISON), rows(2), rows(3)])
    assert isinstance(results[1], ModelError)
    assert [r["y"][0, 0] for i, r in enumerate(results) if i != 1] == [2, 4, 6]
    assert model.batches[0] == [1, POISON]
    assert sorted(model.batches[1:]) == [[1], [2, 3], [POISON]]  # the failed pair, again one by one


def test_when_the_engine_fails_every_request_of_the_batch_gets_the_error():
    model = FakeModel(fail_always=True)
    batcher = MicroBatcher(model, max_batch=4, max_delay=0.01)
    results = gather(batcher, [rows(1), rows(2)])
    assert all(isinstance(r, ModelError) for r in results)


def test_requests_of_other_shapes_run_in_their_own_batches():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=8, max_delay=0.02)
    requests = [rows(1, width=2), rows(2, width=3), rows(3, width=2)]
    results = gather(batcher, requests)
    assert model.batches == [[1, 3], [2]]
    for feeds, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], feeds["x"] * 2)


def test_outputs_without_a_batch_axis_are_run_one_request_at_a_time():
    model = FakeModel(flat=True)
    batcher = MicroBatcher(model, max_batch=4, max_delay=0.01)
    results = gather(batcher, [rows(1), rows(2)])
    assert [r["y"].item() for r in results] == [1, 2]
    assert model.batches == [[1, 2], [1], [2]]


def test_a_request_whose_client_left_is_not_run():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=8, max_delay=0.05)

    async def go():
        gone = asyncio.ensure_future(batcher(rows(1)))
        kept = asyncio.ensure_future(batcher(rows(2)))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    assert asyncio.run(go())["y"].tolist() == [[4]]
    assert model.batches == [[2]]


def test_close_closes_the_model_runner():
    model = FakeModel()
    MicroBatcher(model, max_batch=2, max_delay=0.01).close()
    assert model.closed


def test_a_batching_server_answers_concurrent_requests_with_their_own_rows():
    x = np.load(DIGITS / "mlp_test.npz")["input"][:24].astype(np.float32)
    model = load(DIGITS / "mlp.onnx")
    app = create_app(model, ServerSettings(port=0, concurrency=1, max_batch=8, max_delay_ms=20))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edgekit") as client:
            answers = await asyncio.gather(*(client.post("/predict", json={"features": [r.tolist()]}) for r in x))
            metrics = await client.get("/metrics")
        return [a.json()["prediction"][0] for a in answers], metrics.text

    try:
        labels, metrics = asyncio.run(go())
    finally:
        app.close()
    assert labels == model.predict({"input": x})["label"].tolist()
    calls = next(line for line in metrics.splitlines() if line.startswith("edgekit_batch_size_count"))
    assert float(calls.split()[-1]) < 24  # fewer backend calls than requests: they were batched


def test_max_batch_is_refused_for_a_model_without_a_free_batch_axis():
    from edgekit_runtime.errors import ConfigError
    from edgekit_runtime.specs import TensorSpec

    model = load(DIGITS / "mlp.onnx")
    model.inputs = [TensorSpec("input", "float32", (1, 64))]
    with pytest.raises(ConfigError, match=r"input 'input' has shape \[1, 64\]: serve this model without --max-batch"):
        ServerSettings(max_batch=4).check_model(model)


class SlowModel(FakeModel):
    """Takes ``seconds`` per call, like an engine that is busy."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def __call__(self, feeds):
        self.batches.append(feeds["x"][:, 0].tolist())
        await asyncio.sleep(self.seconds)
        return {"y": feeds["x"] * 2}


def test_without_a_delay_a_lone_request_runs_at_once():
    model = SlowModel(0.0)
    batcher = MicroBatcher(model, max_batch=8, max_delay=0.0, slots=1)

    async def one():
        start = time.perf_counter()
        out = await batcher(rows(1.0))
        return out, time.perf_counter() - start

    out, waited = asyncio.run(one())
    assert out["y"].tolist() == [[2.0]]
    assert waited < 0.05
    assert model.batches == [[1.0]]


def test_without_a_delay_requests_that_queue_behind_a_busy_engine_share_the_next_call():
    model = SlowModel(0.05)
    batcher = MicroBatcher(model, max_batch=8, max_delay=0.0, slots=1)
    results = gather(batcher, [rows(float(i)) for i in range(5)])
    assert [r["y"][0, 0] for r in results] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert model.batches == [[0.0], [1.0, 2.0, 3.0, 4.0]]  # the first ran alone; the rest waited for it together
