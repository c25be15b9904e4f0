"""Model calls off the event loop, in a thread pool of ``concurrency`` workers: at most that many at once.

The event loop parses and checks requests; the backend runs in a worker thread (ONNX Runtime and LiteRT
release the GIL while they compute), so a slow batch never stalls health checks or other clients.

The pool's size is the bound; there is no semaphore in front of it. Measured on 2 cores with the digits MLP
at batch 1 and 16 connections, an ``asyncio.Semaphore`` around the call cut throughput from ~4,600 to
~2,500 requests/s: each finished call had to wake the loop to release its slot before the next request could
reach an idle worker. Without it, requests queue in the pool and a worker picks up the next one at once. The
queue stays bounded all the same: an HTTP/1.1 connection has one request in flight at a time.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy as np

    from edgekit_runtime.server.metrics import ServerMetrics

    Feeds = Mapping[str, np.ndarray]
    Outputs = dict[str, np.ndarray]


class Infer(Protocol):
    """What protocols call with checked inputs: a model run that does not block the loop."""

    async def __call__(self, feeds: Feeds) -> Outputs:
        """The model's outputs for ``feeds``, by name."""

    def close(self) -> None:
        """Let go of threads; calls already running finish first."""


def samples(feeds: Feeds) -> int:
    """How many samples ``feeds`` stack: the first input's leading dimension (1 for a scalar)."""
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


class Inference:
    """Runs a model's checked inputs in a thread pool, ``concurrency`` calls at a time, timing each."""

    def __init__(self, run: Callable[[Feeds], Outputs], *, concurrency: int, metrics: ServerMetrics) -> None:
        """``run`` is the model's unchecked run (``Model.run``): requests are checked before they get here."""
        self._run = run
        self._metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="edgekit-infer")

    def _timed(self, feeds: Feeds) -> tuple[Outputs, float]:
        start = time.perf_counter()
        outputs = self._run(feeds)
        return outputs, time.perf_counter() - start

    async def __call__(self, feeds: Feeds) -> Outputs:
        """Run ``feeds`` in a worker thread as soon as one is free; record the call's time and batch size."""
        outputs, seconds = await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, feeds)
        self._metrics.inference_seconds.observe(seconds)
        self._metrics.batch_size.observe(samples(feeds))
        return outputs

    def close(self) -> None:
        """Stop the pool after the calls already running."""
        self._pool.shutdown(wait=True)
