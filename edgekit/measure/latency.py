"""Latency: p50/p99 of single inference calls, after warm-up, interleaved across models.

Shared, noisy machines make back-to-back timings unfair to whichever model runs while a
neighbour is busy. :func:`measure_interleaved` runs the models in turns, a slice of the time
budget each per round, so every model sees the same noise, and keeps each round's p50.
:func:`time_ratio` compares two models round by round (the rounds are paired: they ran side by
side) and gives the ratio of their times with a confidence interval, so a choice between two
models can tell a real difference from the noise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence


class Runnable(Protocol):
    """Anything with ``run(feeds)``: an :class:`~edgekit.measure.session.OrtRunner`, or a fake in tests."""

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference call."""
        ...


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call at one batch size."""

    batch: int
    p50_ms: float
    p99_ms: float
    runs: int
    #: the p50 of each interleaved round, in order (empty when not timed in rounds)
    rounds_ms: tuple[float, ...] = ()

    @property
    def per_sample_ms(self) -> float:
        """p50 divided by the batch size."""
        return self.p50_ms / self.batch

    @property
    def spread_ms(self) -> float:
        """Half the interquartile range of the per-round p50s: the ``±`` printed after the p50 (0 without rounds)."""
        if len(self.rounds_ms) < 2:  # noqa: PLR2004  (a spread needs two rounds)
            return 0.0
        q25, q75 = np.percentile(self.rounds_ms, [25, 75])
        return float(q75 - q25) / 2

    def to_json(self) -> dict[str, float | int | list[float]]:
        """Serialisable form."""
        return {
            "batch": self.batch,
            "p50_ms": round(self.p50_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "runs": self.runs,
            "spread_ms": round(self.spread_ms, 4),
            "round_p50_ms": [round(r, 4) for r in self.rounds_ms],
        }


@dataclass(frozen=True)
class LatencyBudget:
    """How long to measure each model at each batch size, in ``rounds`` turns."""

    warmup: int = 10
    min_runs: int = 30
    #: high enough that time, not a count, ends a round: 600 calls of a 10 µs model took 6 ms in all, one
    #: scheduler slice of a busy neighbour, and its choice changed from run to run
    max_runs: int = 1_000_000
    seconds: float = 1.5
    #: enough paired rounds for a 95% interval on the ratio of two models' times (:func:`time_ratio`)
    rounds: int = 15


def _timed_runs(runner: Runnable, feeds: dict[str, np.ndarray], runs: int, seconds: float) -> list[float]:
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < runs and (not times or time.perf_counter() < deadline):
        start = time.perf_counter()
        runner.run(feeds)
        times.append(time.perf_counter() - start)
    return times


def measure_interleaved(
    runners: Sequence[Runnable], feeds: dict[str, np.ndarray], budget: LatencyBudget | None = None
) -> list[Latency]:
    """Time every runner on the same feed, taking turns; one :class:`Latency` per runner."""
    budget = budget or LatencyBudget()
    for runner in runners:
        for _ in range(budget.warmup):
            runner.run(feeds)
    samples: list[list[float]] = [[] for _ in runners]
    rounds: list[list[float]] = [[] for _ in runners]
    per_round_runs = max(1, budget.max_runs // budget.rounds)
    per_round_seconds = budget.seconds / budget.rounds
    for _ in range(budget.rounds):
        for i, runner in enumerate(runners):
            times = _timed_runs(runner, feeds, per_round_runs, per_round_seconds)
            samples[i] += times
            rounds[i].append(float(np.median(times)) * 1000.0)
    for i, runner in enumerate(runners):  # top up models too slow to reach min_runs in the budget
        while len(samples[i]) < budget.min_runs:
            samples[i] += _timed_runs(runner, feeds, 1, 0.0)
    batch = len(next(iter(feeds.values())))
    out = []
    for times, per_round in zip(samples, rounds, strict=True):
        ms = np.array(times) * 1000.0
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        out.append(Latency(batch, p50, p99, len(times), tuple(per_round)))
    return out


@dataclass(frozen=True)
class Ratio:
    """One model's time over another's: the median of the paired per-round ratios and its 95% interval."""

    point: float
    low: float
    high: float

    def text(self) -> str:
        """``0.97-1.04`` (or one number when the interval is a point)."""
        if f"{self.low:.2f}" == f"{self.high:.2f}":
            return f"{self.point:.2f}"
        return f"{self.low:.2f}-{self.high:.2f}"


#: the confidence of :func:`time_ratio`'s interval
CONFIDENCE = 0.95


def _order_statistic(n: int) -> int:
    """The k (1-based) of the distribution-free interval [x(k), x(n+1-k)] for a median: the sign test's.

    Fewer than 6 rounds cannot reach 95%: the interval is then the whole range, the widest there is.
    """
    k, tail = 1, 1 / 2**n  # tail: P(at most k - 1 of the n rounds fall below the median)
    while k < (n + 1) // 2:
        tail += math.comb(n, k) / 2**n
        if 2 * tail > 1 - CONFIDENCE:
            break
        k += 1
    return k


def time_ratio(mine: Sequence[Latency], theirs: Sequence[Latency]) -> Ratio:
    """My time over theirs: per round, the geometric mean over the batch sizes both timed; then the median.

    The rounds are paired (round ``i`` of both ran side by side, under the same neighbour's load), so
    the per-round ratios cancel the noise that both saw; the interval is the sign test's for their
    median, so it makes no assumption about the noise's shape and needs no random resampling (the same
    timings always give the same interval). Latencies without rounds give their p50s' ratio as a point.
    """
    pairs = [(a, b) for a in mine for b in theirs if a.batch == b.batch and a.p50_ms > 0 and b.p50_ms > 0]
    if not pairs:
        return Ratio(1.0, 1.0, 1.0)
    n = min(min(len(a.rounds_ms), len(b.rounds_ms)) for a, b in pairs)
    if n == 0:
        point = math.exp(sum(math.log(a.p50_ms / b.p50_ms) for a, b in pairs) / len(pairs))
        return Ratio(point, point, point)
    logs = sorted(
        sum(math.log(a.rounds_ms[i] / b.rounds_ms[i]) for a, b in pairs) / len(pairs)
        for i in range(n)
        if all(a.rounds_ms[i] > 0 and b.rounds_ms[i] > 0 for a, b in pairs)
    )
    if not logs:
        return Ratio(1.0, 1.0, 1.0)
    k = _order_statistic(len(logs))
    return Ratio(math.exp(float(np.median(logs))), math.exp(logs[k - 1]), math.exp(logs[len(logs) - k]))


def tile_feeds(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """A feed of exactly ``batch`` samples, repeating the given ones when there are too few."""
    out = {}
    for name, array in feeds.items():
        reps = -(-batch // len(array))
        out[name] = np.ascontiguousarray(np.concatenate([array] * reps)[:batch])
    return out
