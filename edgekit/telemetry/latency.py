"""A latency percentile over many windows: their histograms merged, and the percentile interpolated in its bucket.

Every window carries its latency histogram, ``latency_ms`` (:class:`edgekit_runtime.contract.telemetry.Latency`):
``buckets``, upper bounds in ms, increasing, and ``counts``, one more than the bounds (the last is everything
slower). A bucket holds the requests above the bound before it (0 for the first) up to its own bound. The
windows' counts are added up, and the percentile is read from the sum assuming that a bucket's requests spread
evenly between its bounds (linear interpolation, as Prometheus' ``histogram_quantile`` does), instead of the
bucket's upper bound, which is what a window's own ``p99`` says. A percentile that falls in the last, unbounded
bucket has no bound to interpolate to: it is reported as above the highest bound.

Windows with different bounds (runtimes of different versions) are merged on all their bounds together; what
lies above a window's own highest bound counts as above every bound, so such a mix never understates. A window
whose histogram is malformed (or missing) is left out.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable

#: the percentile ``telemetry show``, ``fleet devices`` and the dashboard show
P99 = 0.99
#: how many minutes of each device's windows, up to its newest one, the p99 covers unless told otherwise
P99_MINUTES = 15


@dataclass(frozen=True)
class Histogram:
    """One window's latency histogram, checked."""

    #: upper bounds in ms, increasing
    buckets: tuple[float, ...]
    #: requests in each bucket; one more than ``buckets`` (the last: slower than every bound)
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Percentile:
    """A latency percentile over some windows."""

    #: ms, interpolated within its bucket; ``None`` without requests, or when it lies above every bound
    ms: float | None
    #: the highest bound (ms), when the percentile lies above it (``ms`` is ``None`` then)
    above_ms: float | None
    #: requests the histograms counted
    requests: int


#: the percentile of no requests
NO_REQUESTS = Percentile(ms=None, above_ms=None, requests=0)


def histogram(value: Any) -> Histogram | None:  # noqa: ANN401 (a window's latency_ms as stored: anything)
    """A window's ``latency_ms`` (an object, or its JSON text) as a :class:`Histogram`; ``None`` when malformed."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    buckets: Any = value.get("buckets")
    counts: Any = value.get("counts")
    if not _bounds(buckets) or not isinstance(counts, list) or len(counts) != len(buckets) + 1:
        return None
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return None
    return Histogram(tuple(float(b) for b in buckets), tuple(counts))


def _bounds(buckets: Any) -> bool:  # noqa: ANN401
    """Whether ``buckets`` is a list of positive, finite, increasing numbers."""
    if not isinstance(buckets, list) or not buckets:
        return False
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in buckets):
        return False
    return buckets[0] > 0 and all(a < b for a, b in itertools.pairwise(buckets))


def percentile(histograms: Iterable[Histogram], q: float = P99) -> Percentile:
    """The ``q`` quantile (0 < q < 1) of the requests ``histograms`` counted, together."""
    merged: dict[tuple[float, ...], list[int]] = {}
    for h in histograms:
        counts = merged.setdefault(h.buckets, [0] * len(h.counts))
        for i, count in enumerate(h.counts):
            counts[i] += count
    total = sum(sum(counts) for counts in merged.values())
    if not total:
        return NO_REQUESTS
    rank = q * total
    edges = sorted({0.0}.union(*merged))
    below = [_at_or_below(edge, merged) for edge in edges]
    for k in range(1, len(edges)):
        if below[k] >= rank:  # below[k - 1] < rank: the requests between the two edges hold it
            low, high = edges[k - 1], edges[k]
            share = (rank - below[k - 1]) / (below[k] - below[k - 1])
            return Percentile(ms=round(low + share * (high - low), 3), above_ms=None, requests=total)
    return Percentile(ms=None, above_ms=edges[-1], requests=total)


def _at_or_below(edge: float, merged: dict[tuple[float, ...], list[int]]) -> float:
    """Requests at or below ``edge`` ms, spreading each bucket's evenly between its bounds."""
    found = 0.0
    for bounds, counts in merged.items():
        low = 0.0
        for high, count in zip(bounds, counts[:-1], strict=True):
            if high <= edge:
                found += count
            elif low < edge:
                found += count * (edge - low) / (high - low)
            low = high
    return found


def check_minutes(minutes: float) -> float:
    """``minutes`` of windows to take a percentile over; :class:`ConfigError` unless more than 0."""
    if not minutes > 0:
        raise ConfigError(f"--p99-minutes {minutes} is not more than 0: give 1 or more")
    return minutes


def shown(ms: float | None, *, above: float | None, requests: int, windows: int) -> str:
    """A percentile as a table cell: ms (3 digits), ``> 10000`` above every bound, ``idle`` without requests."""
    if not windows:
        return "-"
    if not requests:
        return "idle"
    if ms is not None:
        return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"  # noqa: PLR2004
    return "-" if above is None else f"> {above:g}"  # "-": windows without a latency histogram
