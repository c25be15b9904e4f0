"""One telemetry window: request counts, latency, and how the inputs compare with the bundle's reference.

Per window: requests, errors by kind, batch sizes, a latency histogram with fixed buckets and p50/p90/p99
read from it; per input feature count, mean, std, min, max and the count in each of the reference's bins
(``reference.json``, counted by the same rule: ``searchsorted(edges, x, side="right")``), with the
population stability index against the reference and a drift flag; and, when the first output is labels
(integers or text, one per sample), their counts: the message's
:class:`~edgekit_runtime.contract.telemetry.WindowNumbers` (:meth:`Window.numbers`).

PSI = sum over the bins of (a - e) * ln(a / e), where a and e are the window's and the reference's shares,
each floored at 1e-4 so that an empty bin does not make it infinite. The usual reading: below 0.1 stable,
0.1 to 0.25 a moderate shift, above 0.25 a large one; the flag is raised above ``psi_threshold`` (0.2) once
a feature has ``min_samples`` values.

Recording is cheap enough to leave on: a request appends one tuple of references (its latency, inputs, first
output and error) to a buffer, about a microsecond; everything else happens when the buffer is counted: when
the window closes, or earlier, once it
holds :data:`FLUSH_ELEMENTS` values (:attr:`Window.full`), by whoever owns the window: the recorder does it
on its own thread, never on the event loop that records. :meth:`Window.take` hands the buffer over and
:meth:`Window.count` counts it; the two touch disjoint fields, so recording may go on while a taken buffer
is counted.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import msgspec
import numpy as np

from edgekit_runtime.contract.telemetry import Feature, InputStats, Latency, Outputs, WindowNumbers

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgekit_runtime.contract.telemetry import ErrorKind

#: latency bucket bounds in milliseconds (the last bucket is everything slower)
LATENCY_BUCKETS_MS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
PSI_FLOOR = 1e-4
#: buffered input values that trigger a counting pass (bounds the memory a window holds on to)
FLUSH_ELEMENTS = 1 << 16


@dataclass
class _InputReference:
    axis: int | None
    edges: np.ndarray  # [features, max_edges], padded with +inf
    expected: np.ndarray  # [features, max_edges + 1] reference shares, padded with 0
    bins: np.ndarray  # [features]: real bin count of each feature


def parse_reference(doc: Mapping[str, Any]) -> dict[str, _InputReference]:
    """``reference.json`` as padded arrays, by input name (inputs without features are left out)."""
    out = {}
    for entry in doc.get("inputs", []):
        features = entry.get("features") or []
        if not features:
            continue
        width = max(len(f["edges"]) for f in features)
        edges = np.full((len(features), width), np.inf)
        expected = np.zeros((len(features), width + 1))
        for i, f in enumerate(features):
            edges[i, : len(f["edges"])] = f["edges"]
            expected[i, : len(f["fractions"])] = f["fractions"]
        bins = np.array([len(f["fractions"]) for f in features])
        out[str(entry["name"])] = _InputReference(entry.get("feature_axis"), edges, expected, bins)
    return out


class _FeatureStats:
    """Running sums, extremes and bin counts of one input's features."""

    def __init__(self, reference: _InputReference) -> None:
        width = reference.expected.shape[0]
        self.count = 0
        self.total, self.squares = np.zeros(width), np.zeros(width)
        self.low, self.high = np.full(width, np.inf), np.full(width, -np.inf)
        self.bins = np.zeros(reference.expected.shape, dtype=np.int64)
        self._offsets = np.arange(width) * reference.expected.shape[1]
        self._edges = reference.edges

    def add(self, values: np.ndarray) -> None:
        """``values``: [samples, features] as float64."""
        self.count += values.shape[0]
        self.total += values.sum(axis=0)
        self.squares += np.square(values).sum(axis=0)
        np.minimum(self.low, values.min(axis=0), out=self.low)
        np.maximum(self.high, values.max(axis=0), out=self.high)
        index = np.empty(values.shape, dtype=np.intp)
        for j in range(values.shape[1]):  # one binary search per feature: a pass over the values, not over all bins
            index[:, j] = np.searchsorted(self._edges[j], values[:, j], side="right")
        flat = (index + self._offsets).ravel()
        self.bins += np.bincount(flat, minlength=self.bins.size).reshape(self.bins.shape)


#: one recorded request: latency in seconds, inputs (sampled), first output (sampled), error kind, batch size
_Request = tuple[float, "Mapping[str, np.ndarray] | None", "np.ndarray | None", "str | None", int]


@dataclass
class Window:
    """Everything recorded since the window opened."""

    start: float
    reference: dict[str, _InputReference]
    #: successful requests a second whose inputs and first output are kept (features and classes)
    sample_rate: float = float("inf")
    counted: int = 0
    sampled: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    batch_sizes: Counter[int] = field(default_factory=Counter)
    latency: np.ndarray = field(default_factory=lambda: np.zeros(len(LATENCY_BUCKETS_MS) + 1, dtype=np.int64))
    latency_sum_ms: float = 0.0
    features: dict[str, _FeatureStats] = field(default_factory=dict)
    classes: Counter[str] = field(default_factory=Counter)
    _pending: list[_Request] = field(default_factory=list)
    _buffered: int = 0
    _second_ends: float = 0.0
    _kept_this_second: int = 0

    def record(
        self,
        seconds: float,
        *,
        inputs: Mapping[str, np.ndarray] | None = None,
        first_output: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """One request: its latency, and its inputs and first output when it succeeded (kept, not yet counted).

        Inputs and output are kept for the first ``sample_rate`` successful requests of each second: what the
        feature statistics and class counts cover.
        """
        if error is not None or not inputs:
            self._pending.append((seconds, None, None, error, -1))
            return
        first = next(iter(inputs.values()))
        batch = first.shape[0] if first.ndim else 1
        if self._kept_this_second >= self.sample_rate:
            if time.monotonic() < self._second_ends:
                self._pending.append((seconds, None, None, None, batch))
                return
            self._kept_this_second = 0
        if not self._kept_this_second:  # a new second of sampling starts with this request
            self._second_ends = time.monotonic() + 1.0
        self._kept_this_second += 1
        self._pending.append((seconds, inputs, first_output, None, batch))
        for value in inputs.values():
            self._buffered += value.size

    def add(self, taken: list[_Request]) -> None:
        """Requests another process recorded and sampled (what its :meth:`take` handed over), not yet counted."""
        self._pending.extend(taken)
        self._buffered += sum(v.size for request in taken if request[1] for v in request[1].values())

    @property
    def requests(self) -> int:
        """Requests recorded, counted or not."""
        return self.counted + len(self._pending)

    @property
    def full(self) -> bool:
        """Whether the buffer holds :data:`FLUSH_ELEMENTS` input values or more: time to count it."""
        return self._buffered >= FLUSH_ELEMENTS

    def take(self) -> list[_Request]:
        """Hand over what is buffered (one reference), leaving an empty buffer."""
        taken, self._pending, self._buffered = self._pending, [], 0
        return taken

    def count(self, taken: list[_Request]) -> None:
        """Count a taken buffer into the window's numbers."""
        if not taken:
            return
        ms = np.fromiter((request[0] for request in taken), dtype=np.float64, count=len(taken)) * 1000.0
        self.latency += np.bincount(np.searchsorted(LATENCY_BUCKETS_MS, ms, side="left"), minlength=len(self.latency))
        self.latency_sum_ms += float(ms.sum())
        errors = [request[3] for request in taken if request[3] is not None]
        if errors:
            self.errors.update(errors)
        served = [request for request in taken if request[3] is None]
        self.batch_sizes.update(request[4] for request in served if request[4] >= 0)
        with_inputs = [request[1] for request in served if request[1]]
        self.sampled += len(with_inputs)
        for name, reference in self.reference.items():
            arrays = [v for inputs in with_inputs if (v := inputs.get(name)) is not None and v.size]
            if arrays:  # a request of no samples has no values to count
                stats = self.features.get(name) or self.features.setdefault(name, _FeatureStats(reference))
                stats.add(_joined_features(arrays, reference))
        labels = [
            out if out.ndim else out.reshape(1)
            for request in served
            if (out := request[2]) is not None and out.dtype.kind in "iuUSb" and out.ndim <= 1
        ]
        if labels:
            found, counts = np.unique(np.concatenate(labels), return_counts=True)
            self.classes.update({str(k): int(c) for k, c in zip(found.tolist(), counts.tolist(), strict=True)})
        self.counted += len(taken)

    def flush(self) -> None:
        """Count everything buffered (the window's numbers are complete after this)."""
        self.count(self.take())

    def numbers(self, *, psi_threshold: float = 0.2, min_samples: int = 50) -> WindowNumbers:
        """What the window counted, as the message telemetry sends says it (who sent it, and when, the recorder's)."""
        self.flush()
        inputs = [
            InputStats(name, _features(stats, self.reference[name], psi_threshold, min_samples))
            for name, stats in self.features.items()
        ]
        return WindowNumbers(
            requests=self.requests,
            # the server counts the kinds the contract names (server/telemetry_hook.py)
            errors=cast("dict[ErrorKind, int]", dict(self.errors)),
            batch_sizes={str(k): v for k, v in sorted(self.batch_sizes.items())},
            latency_ms=Latency(
                buckets=list(LATENCY_BUCKETS_MS),
                counts=self.latency.tolist(),
                mean=self.latency_sum_ms / self.requests if self.requests else None,
                p50=percentile(self.latency, 0.50),
                p90=percentile(self.latency, 0.90),
                p99=percentile(self.latency, 0.99),
            ),
            inputs=inputs,
            drift=any(f.drift for entry in inputs for f in entry.features),
            outputs=Outputs(classes=dict(self.classes)) if self.classes else Outputs(),
            sampled=self.sampled,
        )

    def summary(self, end: float, *, psi_threshold: float = 0.2, min_samples: int = 50) -> dict[str, Any]:
        """The window's start, end and :meth:`numbers` as plain JSON values (to read them)."""
        numbers = self.numbers(psi_threshold=psi_threshold, min_samples=min_samples)
        return {"window_start": self.start, "window_end": end, **msgspec.to_builtins(numbers)}


def _joined_features(arrays: list[np.ndarray], reference: _InputReference) -> np.ndarray:
    """One [samples, features] array from many requests (one join when their shapes agree past the batch)."""
    if len(arrays) == 1:
        return _as_features(arrays[0], reference)
    try:
        return _as_features(np.concatenate(arrays), reference)
    except ValueError:  # free dimensions past the batch (an OCR line's width): each request on its own
        return np.concatenate([_as_features(a, reference) for a in arrays])


def _as_features(array: np.ndarray, reference: _InputReference) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if reference.axis is None:
        return values.reshape(-1, 1)
    return np.moveaxis(values, reference.axis, -1).reshape(-1, values.shape[reference.axis])


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    a = np.maximum(actual, PSI_FLOOR)
    e = np.maximum(expected, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def percentile(counts: np.ndarray, q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (``None`` for an empty window)."""
    total = int(counts.sum())
    if not total:
        return None
    index = int(np.searchsorted(np.cumsum(counts), q * total, side="left"))
    return LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else float("inf")


def _features(stats: _FeatureStats, reference: _InputReference, threshold: float, min_samples: int) -> list[Feature]:
    n = stats.count
    mean = stats.total / n
    std = np.sqrt(np.maximum(stats.squares / n - mean**2, 0.0))
    features = []
    for i in range(len(mean)):
        bins = int(reference.bins[i])
        counts = stats.bins[i, :bins]
        value = psi(counts / n, reference.expected[i, :bins]) if n >= min_samples else None
        features.append(
            Feature(
                index=i,
                count=n,
                mean=float(mean[i]),
                std=float(std[i]),
                min=float(stats.low[i]),
                max=float(stats.high[i]),
                bins=counts.tolist(),
                psi=value,
                drift=value is not None and value > threshold,
            )
        )
    return features
