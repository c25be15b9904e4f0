"""The inference pool: short model calls move onto the event loop, long ones stay in threads."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from edgekit_runtime.server.inference import DECIDE_EVERY, FIRST_CALLS, Inference
from edgekit_runtime.server.metrics import ServerMetrics

LOOP_THREAD = "MainThread"  # asyncio.run runs the loop in the calling thread
#: the inline bound of these tests: far above a busy machine's hiccups, far below SLOW
BOUND = 0.005
SLOW = 0.012


class Model:
    """A model run that records the thread it ran in and takes ``seconds``."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.threads: list[str] = []

    def __call__(self, feeds):
        self.threads.append(threading.current_thread().name)
        if self.seconds:
            time.sleep(self.seconds)
        return {"y": feeds["x"] * 2}


def metrics() -> ServerMetrics:
    return ServerMetrics(name="m", version="1", sha256="0" * 64, backend="onnx", load_seconds=0.0)


def call(infer: Inference, count: int, samples: int = 1) -> None:
    async def go():
        for _ in range(count):
            out = await infer({"x": np.ones((samples, 4), np.float32)})
            assert out["y"].shape == (samples, 4)

    asyncio.run(go())


@pytest.fixture
def pool():
    """Makes an :class:`Inference` (``inline_below``: BOUND unless given) and closes every one it made."""
    made = []

    def make(model, *, concurrency=1, metrics_=None, inline_below=BOUND):
        infer = Inference(model, concurrency=concurrency, metrics=metrics_ or metrics(), inline_below=inline_below)
        made.append(infer)
        return infer

    yield make
    for infer in made:
        infer.close()


def test_a_short_model_runs_on_the_event_loop_once_measured(pool):
    model = Model()
    infer = pool(model, concurrency=2)
    call(infer, FIRST_CALLS)
    assert all(t.startswith("edgekit-infer") for t in model.threads)
    assert infer.inline  # decided after the first calls
    model.threads.clear()
    call(infer, 10)
    assert model.threads == [LOOP_THREAD] * 10


def test_a_slow_model_stays_in_the_pool(pool):
    model = Model(seconds=SLOW)
    infer = pool(model, concurrency=2)
    call(infer, FIRST_CALLS + DECIDE_EVERY)
    assert not infer.inline
    assert LOOP_THREAD not in model.threads


def test_a_model_that_becomes_slow_goes_back_to_the_pool(pool):
    model = Model()
    infer = pool(model)
    call(infer, FIRST_CALLS)
    assert infer.inline
    model.seconds = SLOW  # past twice the bound in more than 1% of the window
    call(infer, DECIDE_EVERY)
    assert not infer.inline
    model.threads.clear()
    call(infer, 3)
    assert LOOP_THREAD not in model.threads


def test_a_request_larger_than_any_measured_runs_in_the_pool(pool):
    model = Model()
    infer = pool(model)
    call(infer, FIRST_CALLS, samples=4)
    assert infer.inline
    model.threads.clear()
    call(infer, 1, samples=4)
    call(infer, 1, samples=1000)  # its time is not known to be short
    assert model.threads[0] == LOOP_THREAD
    assert model.threads[1].startswith("edgekit-infer")


@pytest.mark.parametrize("inline_below", [0.0, BOUND])
def test_zero_keeps_every_call_in_the_pool(pool, inline_below):
    model = Model()
    infer = pool(model, inline_below=inline_below)
    call(infer, FIRST_CALLS + 5)
    on_loop = model.threads.count(LOOP_THREAD)
    assert on_loop == (0 if inline_below == 0 else 5)


def test_while_other_requests_are_answered_calls_go_to_the_pool(pool):
    model = Model()
    served = metrics()
    infer = pool(model, metrics_=served)
    call(infer, FIRST_CALLS)
    assert infer.inline
    model.threads.clear()
    served.inflight.set(3)  # this request and two others
    call(infer, 2)
    served.inflight.set(1)  # this one alone
    call(infer, 2)
    assert [t == LOOP_THREAD for t in model.threads] == [False, False, True, True]
