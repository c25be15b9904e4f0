"""The memory budget: request bodies, and what they decode into, may hold at most so many bytes at once.

A JSON body takes many times its size once parsed: orjson's scratch, a Python object per value, then the
NumPy arrays made from them. A body of short floats (``0.5,``) peaks at about 16 times its length, and one
of empty lists or objects at about 37 times (measured; docs/runtime.md, "Limits"). So a request reserves
its share of the budget in two steps:

1. **Before its body is read**, by what its headers say: ``Content-Length`` times the cost of JSON as dense
   as short floats (:data:`TYPICAL_JSON`), or the ``--max-body-bytes`` limit when the length is not declared
   (chunked) or the body is compressed. For Open Inference Protocol requests, the part after
   ``Inference-Header-Content-Length`` is binary tensor data and costs :data:`BINARY` per byte. A request
   waits here, first come first served, for up to ``--memory-wait`` seconds, then gets a 503 with
   ``Retry-After``; one that could never fit gets a 413.
2. **When its JSON is parsed**, by the JSON itself (:func:`json_cost`): its length and its count of
   separators, brackets, braces and quotes bound how many values and containers it makes. The reservation
   shrinks to that, or grows if there is room now; if there is not, a 503 (a 413 if it could never fit).
   Growing never waits: two requests each holding part of the budget and waiting for more would wait on
   each other.

After the inputs are checked, the body and its JSON are let go and the reservation shrinks to the input
arrays (:meth:`Reservation.keep`), so the next request can be read while the model runs. Everything runs on
the event loop's one thread: no locks.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import TYPE_CHECKING

from edgekit_runtime.errors import HttpError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np

    from edgekit_runtime.server.metrics import Gauge

MIB = 1 << 20
#: per byte of JSON: the body and a copy of it, and the object a value of a few characters becomes (a float, an
#: int past 256, a string: two or three dozen bytes), or a string's text twice (the str, and a NumPy array of it)
PER_BYTE = 9
#: per byte more when the JSON is not plain ASCII (``\u`` escapes, UTF-8): text of up to 4 bytes a character
PER_BYTE_WIDE = 4
#: per JSON value (a comma or a colon each): orjson's scratch entry, the pointer to it, and its elements in the
#: arrays made from it
PER_VALUE = 36
#: per ``[``, per ``{`` and per ``"``: a list, a dictionary with its first keys, half a string's header
PER_LIST = 72
PER_OBJECT = 168  # Python 3.10 makes a small dict 232 bytes (3.11: 184): the larger of the two, and room
PER_QUOTE = 16
#: what a byte of JSON is charged before it is seen: as dense as rows of ``0.5,`` (a value every 4 bytes, a list
#: every 64 values), the densest numbers there are but one-digit integers, so that such a body never needs more
#: once its JSON is seen (more is taken only if free at that moment: a busy server would answer 503)
TYPICAL_JSON = PER_BYTE + PER_VALUE // 4 + 1
#: per byte of binary tensor data: the body while it is joined, the arrays (views of it when they are aligned, else
#: copies), and the copy an engine makes of an unaligned array
BINARY = 4
#: what the input arrays keep while the model runs: the arrays, and a copy the engine or batcher may make
KEEP = 2


def upfront_cost(size: int, json_bytes: int | None = None) -> int:
    """What a body of ``size`` bytes reserves before it is read; ``json_bytes`` of it JSON (default: all)."""
    json_bytes = size if json_bytes is None else min(json_bytes, size)
    return json_bytes * TYPICAL_JSON + (size - json_bytes) * BINARY


def largest_body(budget: int) -> int:
    """The largest JSON body a budget of ``budget`` bytes admits before its JSON is seen."""
    return budget // TYPICAL_JSON


def json_cost(data: bytes) -> int:
    """An upper bound of the memory ``data`` takes while parsed and turned into arrays, from its bytes alone.

    Measured against the peak resident memory of a server answering 16 MiB bodies of each kind (floats,
    integers, strings, empty lists and objects, MLflow records): never under it, and within 10% of it for
    floats; about twice it for one-digit integers, which Python does not allocate.
    """
    wide = not data.isascii() or b"\\u" in data
    values = data.count(b",") + data.count(b":") + 1
    return (
        len(data) * (PER_BYTE + PER_BYTE_WIDE * wide)
        + values * PER_VALUE
        + data.count(b"[") * PER_LIST
        + data.count(b"{") * PER_OBJECT
        + data.count(b'"') * PER_QUOTE
    )


def body_cost(size: int, json_part: bytes) -> int:
    """The cost of a body of ``size`` bytes whose JSON is ``json_part`` and the rest binary tensor data."""
    return json_cost(json_part) + (size - len(json_part)) * BINARY


def arrays_cost(arrays: Iterable[np.ndarray]) -> int:
    """What checked input arrays keep while the model runs."""
    return KEEP * sum(int(a.nbytes) for a in arrays)


class MemoryBudget:
    """``capacity`` bytes, handed out first come first served; a request waits at most ``wait`` seconds."""

    def __init__(self, capacity: int, wait: float, gauge: Gauge | None = None) -> None:
        """Nothing reserved yet; ``gauge`` follows what is."""
        self.capacity = capacity
        self.wait = wait
        self.gauge = gauge
        self.reserved = 0
        #: the most ever reserved at once (tests read it)
        self.high_water = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def reserve(self, amount: int) -> Reservation:
        """``amount`` bytes, once they are free and everyone before has theirs; 503 after ``wait``, 413 if too much."""
        amount = max(amount, 0)
        if amount > self.capacity:
            raise HttpError(413, self._too_large(amount))
        if amount == 0 or (not self._waiting and self.reserved + amount <= self.capacity):
            self._take(amount)
            return Reservation(self, amount)
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((amount, granted))
        try:
            await asyncio.wait_for(asyncio.shield(granted), self.wait)
        except BaseException as exc:
            if granted.done() and not granted.cancelled():  # granted as the wait ran out: hand it back
                self._give_back(amount)
            else:
                granted.cancel()
                self._wake()  # the requests behind this one may fit now
            if isinstance(exc, asyncio.TimeoutError):
                raise HttpError(
                    503,
                    f"the server is busy: requests in progress hold its memory budget ({self.capacity / MIB:g} MiB, "
                    f"--memory-budget-mb) and this one waited {self.wait:g} s for {amount / MIB:.1f} MiB; retry later",
                    headers=((b"retry-after", b"1"),),
                ) from None
            raise
        return Reservation(self, amount)

    def _take(self, amount: int) -> None:
        self.reserved += amount
        self.high_water = max(self.high_water, self.reserved)
        if self.gauge is not None:
            self.gauge.set(self.reserved)

    def _give_back(self, amount: int) -> None:
        self.reserved -= amount
        if self.gauge is not None:
            self.gauge.set(self.reserved)
        self._wake()

    def _wake(self) -> None:
        """Grant waiting requests in order, as long as the first of them fits."""
        while self._waiting:
            amount, granted = self._waiting[0]
            if granted.done():  # gave up waiting
                self._waiting.popleft()
                continue
            if self.reserved + amount > self.capacity:
                return
            self._waiting.popleft()
            self._take(amount)
            granted.set_result(None)

    def _too_large(self, amount: int) -> str:
        return (
            f"this request needs {math.ceil(amount / MIB)} MiB to decode, more than the server's whole memory budget "
            f"({self.capacity / MIB:g} MiB, --memory-budget-mb): send less per request, or binary tensor data"
        )


class Reservation:
    """A request's share of the budget: resized as its needs become known, given back when it is answered."""

    __slots__ = ("amount", "budget")

    def __init__(self, budget: MemoryBudget, amount: int) -> None:
        """Hold ``amount`` of ``budget`` (already taken)."""
        self.budget = budget
        self.amount = amount

    def fit(self, amount: int) -> None:
        """Hold exactly ``amount``: shrinking always works; growing needs room now (503), and within the whole (413)."""
        amount = max(amount, 0)
        budget = self.budget
        if amount > budget.capacity:
            raise HttpError(413, budget._too_large(amount))  # noqa: SLF001
        more = amount - self.amount
        if more > 0 and budget.reserved + more > budget.capacity:
            raise HttpError(
                503,
                f"the server is busy: requests in progress hold its memory budget ({budget.capacity / MIB:g} MiB, "
                f"--memory-budget-mb) and this body's JSON needs {amount / MIB:.1f} MiB to decode; retry later",
                headers=((b"retry-after", b"1"),),
            )
        self.amount = amount
        if more > 0:
            budget._take(more)  # noqa: SLF001
        elif more < 0:
            budget._give_back(-more)  # noqa: SLF001

    def for_json(self, size: int, json_part: bytes) -> None:
        """Fit what a body of ``size`` bytes takes while parsed, ``json_part`` of it JSON and the rest binary data."""
        self.fit(body_cost(size, json_part))

    def keep(self, arrays: Iterable[np.ndarray]) -> None:
        """Shrink to what the checked input arrays need while the model runs (never grows)."""
        self.fit(min(self.amount, arrays_cost(arrays)))

    def release(self) -> None:
        """Give everything back (once)."""
        if self.amount:
            amount, self.amount = self.amount, 0
            self.budget._give_back(amount)  # noqa: SLF001
