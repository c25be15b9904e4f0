"""Model calls off the event loop, in a thread pool of ``concurrency`` workers: at most that many at once.

The event loop parses and checks requests; the backend runs in a worker thread (ONNX Runtime and LiteRT
release the GIL while they compute), so a slow batch never stalls health checks or other clients.

The pool's size is the bound; there is no semaphore in front of it. Measured on 2 cores with the digits MLP
at batch 1 and 16 connections, an ``asyncio.Semaphore`` around the call cut throughput from ~4,600 to
~2,500 requests/s: each finished call had to wake the loop to release its slot before the next request could
reach an idle worker. Without it, requests queue in the pool and a worker picks up the next one at once. The
queue stays bounded all the same: an HTTP/1.1 connection has one request in flight at a time.

**Inline calls.** Handing a call to a thread and waking the loop when it is done costs tens of microseconds, more
than a small model's whole call (the digits MLP: about 15 µs). So a model measured short runs on the event loop
itself: over the last :data:`WINDOW` calls, when the 99th percentile of the call time is under ``inline_below``
seconds, calls run inline; when it rises past twice that, they go back to the pool (the gap keeps the choice from
flapping). The first :data:`FIRST_CALLS` calls always go to the pool, and so does a request with more samples than
any call in the window (its time is not known to be short, and a long call would stall every connection), and
so does any call while other requests are being answered: then the loop has their parsing to do while a thread
runs the model, and the pool measured faster (digits MLP, one core, 16 connections: 8,273 requests/s through the
pool, 6,903 with every call inline; one connection: 3,435 through the pool, 4,660 inline). A call inline blocks
the loop for its duration, bounded by that percentile. With micro-batching on, calls always
go to the pool: batches form only from requests that queue behind a busy engine, which an inline call never is.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy as np

    from edgekit_runtime.server.metrics import ServerMetrics

    Feeds = Mapping[str, np.ndarray]
    Outputs = dict[str, np.ndarray]

#: calls whose times decide between inline and the pool
WINDOW = 256
#: calls that run in the pool before the first decision
FIRST_CALLS = 32
#: calls between two decisions
DECIDE_EVERY = 64


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
    """Runs a model's checked inputs in a thread pool, ``concurrency`` calls at a time, timing each.

    ``inline_below`` (seconds; 0: never) lets calls measured shorter than that run on the event loop.
    """

    def __init__(
        self,
        run: Callable[[Feeds], Outputs],
        *,
        concurrency: int,
        metrics: ServerMetrics,
        inline_below: float = 0.0,
    ) -> None:
        """``run`` is the model's unchecked run (``Model.run``): requests are checked before they get here."""
        self._run = run
        self._metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="edgekit-infer")
        self._inline_below = inline_below
        #: (seconds, samples) of recent calls
        self._recent: deque[tuple[float, int]] = deque(maxlen=WINDOW)
        self._until_decision = FIRST_CALLS
        self._largest = 0  # samples of the largest call in the window
        #: whether short calls run on the event loop now
        self.inline = False

    def _timed(self, feeds: Feeds) -> tuple[Outputs, float]:
        start = time.perf_counter()
        outputs = self._run(feeds)
        return outputs, time.perf_counter() - start

    async def __call__(self, feeds: Feeds) -> Outputs:
        """Run ``feeds`` inline when calls are measured short, else in a worker thread as soon as one is free."""
        count = samples(feeds)
        # inline only while this is the one request being answered: with others waiting, the pool lets the loop
        # parse them while a thread runs the model, which measured faster at 16 connections
        if self.inline and count <= self._largest and self._metrics.inflight.get() <= 1:
            outputs, seconds = self._timed(feeds)
        else:
            outputs, seconds = await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, feeds)
        self._metrics.inference_seconds.observe(seconds)
        self._metrics.batch_size.observe(count)
        if self._inline_below > 0:
            self._observe(seconds, count)
        return outputs

    def _observe(self, seconds: float, count: int) -> None:
        self._recent.append((seconds, count))
        self._until_decision -= 1
        if self._until_decision > 0:
            return
        self._until_decision = DECIDE_EVERY
        times = sorted(t for t, _ in self._recent)
        p99 = times[int(0.99 * (len(times) - 1))]
        self._largest = max(n for _, n in self._recent)
        self.inline = p99 < (2 * self._inline_below if self.inline else self._inline_below)

    def close(self) -> None:
        """Stop the pool after the calls already running."""
        self._pool.shutdown(wait=True)
