"""Latency: p50/p99 of single inference calls, after warm-up, interleaved across models.

Shared, noisy machines make back-to-back timings unfair to whichever model runs while a
neighbour is busy. :func:`measure_interleaved` runs the models in turns, a slice of the time
budget each per round, so every model sees the same noise.
"""

from __future__ import annotations

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

    @property
    def per_sample_ms(self) -> float:
        """p50 divided by the batch size."""
        return self.p50_ms / self.batch

    def to_json(self) -> dict[str, float | int]:
        """Serialisable form."""
        return {
            "batch": self.batch,
            "p50_ms": round(self.p50_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "runs": self.runs,
        }


@dataclass(frozen=True)
class LatencyBudget:
    """How long to measure each model at each batch size, in ``rounds`` turns."""

    warmup: int = 10
    min_runs: int = 30
    max_runs: int = 600
    seconds: float = 1.5
    rounds: int = 5


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
    per_round_runs = max(1, budget.max_runs // budget.rounds)
    per_round_seconds = budget.seconds / budget.rounds
    for _ in range(budget.rounds):
        for i, runner in enumerate(runners):
            samples[i] += _timed_runs(runner, feeds, per_round_runs, per_round_seconds)
    for i, runner in enumerate(runners):  # top up models too slow to reach min_runs in the budget
        while len(samples[i]) < budget.min_runs:
            samples[i] += _timed_runs(runner, feeds, 1, 0.0)
    batch = len(next(iter(feeds.values())))
    out = []
    for times in samples:
        ms = np.array(times) * 1000.0
        out.append(Latency(batch, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(times)))
    return out


def tile_feeds(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """A feed of exactly ``batch`` samples, repeating the given ones when there are too few."""
    out = {}
    for name, array in feeds.items():
        reps = -(-batch // len(array))
        out[name] = np.ascontiguousarray(np.concatenate([array] * reps)[:batch])
    return out
