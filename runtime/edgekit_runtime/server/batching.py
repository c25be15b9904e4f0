"""Dynamic micro-batching: requests that arrive close together share one backend call.

A request joins a queue. While the engine has a free slot (fewer than ``slots`` calls running), the queue
runs ``max_delay`` seconds after its oldest request arrived, or at once with ``max_delay=0``; while every
slot is busy, requests gather, and the next call takes them as soon as a slot frees. A queue holding
``max_batch`` samples runs at once. So with ``max_delay=0`` (the default) a lone client never waits for
company, and batches form only from requests that queued behind a busy engine: under load they cost no
latency the client was not already paying. One call takes requests in arrival order
whose inputs have the same shape past the batch axis (they must concatenate), up to ``max_batch`` samples
(a single request larger than that runs alone). Outputs are split back along the first axis, so each
request gets exactly its own rows, in order.

A failing call fails no request by association: when a batch of several requests fails, each is run again
on its own, and only the ones that fail alone get the error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgekit_runtime.errors import ModelError
from edgekit_runtime.server.inference import samples

if TYPE_CHECKING:
    from edgekit_runtime.server.inference import Feeds, Infer, Outputs


@dataclass(eq=False)
class _Waiting:
    feeds: Feeds
    samples: int
    #: shapes past the batch axis: requests batch together only when these agree
    key: tuple[tuple[int, ...], ...]
    arrived: float
    future: asyncio.Future[Outputs]


class MicroBatcher:
    """Queues checked requests and runs them through ``infer`` in batches."""

    def __init__(self, infer: Infer, *, max_batch: int, max_delay: float, slots: int = 1) -> None:
        """``max_batch`` samples per call at most; an idle engine waits at most ``max_delay`` s for company.

        ``slots`` is how many calls the engine runs at once (the inference pool's size).
        """
        self._infer = infer
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.slots = slots
        self._busy = 0
        self._queue: list[_Waiting] = []
        self._queued = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, feeds: Feeds) -> Outputs:
        """Queue ``feeds`` and wait for its share of a batch's outputs."""
        loop = asyncio.get_running_loop()
        key = tuple(a.shape[1:] for a in feeds.values())
        waiting = _Waiting(feeds, samples(feeds), key, loop.time(), loop.create_future())
        self._queue.append(waiting)
        self._queued += waiting.samples
        if self._queued >= self.max_batch:
            self._drain()
        elif self._busy < self.slots:
            if self.max_delay <= 0:
                self._start(self._take())
            elif self._timer is None:
                self._arm()
        return await waiting.future

    def close(self) -> None:
        """Close the model runner underneath."""
        self._infer.close()

    def _arm(self) -> None:
        """Wake up when the oldest request has waited ``max_delay`` (at once if it already has)."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(self._queue[0].arrived + self.max_delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._drop_cancelled()
        if self._queue:
            self._start(self._take())
        self._drain()

    def _drain(self) -> None:
        """Start every full batch; wait for the rest with a timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_cancelled()
        while self._queued >= self.max_batch:
            self._start(self._take())
        if self._queue:
            self._arm()

    def _drop_cancelled(self) -> None:
        if any(w.future.done() for w in self._queue):  # their clients hung up, or the server is stopping
            self._queue = [w for w in self._queue if not w.future.done()]
            self._queued = sum(w.samples for w in self._queue)

    def _take(self) -> list[_Waiting]:
        """The oldest request and the ones after it that fit beside it, in arrival order."""
        first = self._queue[0]
        batch, rest, total = [first], [], first.samples
        full = False
        for waiting in self._queue[1:]:
            if not full and waiting.key == first.key:
                if total + waiting.samples <= self.max_batch:
                    batch.append(waiting)
                    total += waiting.samples
                    continue
                full = True  # first come, first served: nothing of this shape jumps the queue
            rest.append(waiting)
        self._queue = rest
        self._queued -= total
        return batch

    def _start(self, batch: list[_Waiting]) -> None:
        self._busy += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A slot is free: what queued behind the busy engine runs now (it has waited already)."""
        self._running.discard(task)
        self._busy -= 1
        self._drop_cancelled()
        if self._queue and self._busy < self.slots:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._start(self._take())

    async def _run(self, batch: list[_Waiting]) -> None:
        try:
            outputs = await self._infer(_concatenated(batch))
            parts = [outputs] if len(batch) == 1 else _split(outputs, [w.samples for w in batch])
        except Exception as exc:  # noqa: BLE001  (handed to the requests that wait for it)
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            await asyncio.gather(*(self._run([w]) for w in batch))
            return
        except BaseException:
            for waiting in batch:
                waiting.future.cancel()
            raise
        for waiting, part in zip(batch, parts, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(part)


def _concatenated(batch: list[_Waiting]) -> Feeds:
    if len(batch) == 1:
        return batch[0].feeds
    return {name: np.concatenate([w.feeds[name] for w in batch]) for name in batch[0].feeds}


def _split(outputs: Outputs, sizes: list[int]) -> list[Outputs]:
    total = sum(sizes)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ModelError(
                f"output '{name}' has shape {list(array.shape)}, not {total} samples along its first axis: "
                "this model cannot be micro-batched; serve it without --max-batch"
            )
    parts: list[Outputs] = []
    start = 0
    for size in sizes:
        parts.append({name: array[start : start + size] for name, array in outputs.items()})
        start += size
    return parts
