"""Latency: interleaved timing of several runners, and feeds tiled to a batch size."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from edgekit.measure.latency import Latency, LatencyBudget, measure_interleaved, tile_feeds

FEEDS = {"x": np.zeros((4, 3), np.float32)}


class FakeRunner:
    """Takes ``delay`` seconds per call and logs each call under its label."""

    def __init__(self, label: str, delay: float, log: list[str]) -> None:
        self.label = label
        self.delay = delay
        self.log = log

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.log.append(self.label)
        if self.delay:
            time.sleep(self.delay)
        return [feeds["x"]]


def test_one_latency_per_runner_slow_one_slower():
    log: list[str] = []
    fast, slow = FakeRunner("fast", 0.0, log), FakeRunner("slow", 0.002, log)
    budget = LatencyBudget(warmup=2, min_runs=5, max_runs=40, seconds=0.05, rounds=2)

    results = measure_interleaved([fast, slow], FEEDS, budget)

    assert len(results) == 2
    for result, runner in zip(results, (fast, slow), strict=True):
        assert budget.min_runs <= result.runs <= budget.max_runs
        assert log.count(runner.label) == budget.warmup + result.runs
        assert 0 <= result.p50_ms <= result.p99_ms
        assert result.batch == 4
    assert results[1].p50_ms >= 2.0  # at least the slow runner's sleep
    assert results[1].p50_ms > results[0].p50_ms


def test_runners_take_turns_round_by_round():
    log: list[str] = []
    runners = [FakeRunner("a", 0.0, log), FakeRunner("b", 0.0, log)]
    budget = LatencyBudget(warmup=1, min_runs=1, max_runs=30, seconds=0.03, rounds=3)

    measure_interleaved(runners, FEEDS, budget)

    turns = [label for label, _ in itertools.groupby(log)]
    assert turns == ["a", "b"] * (1 + budget.rounds)  # the warm-up, then one turn each per round


def test_a_runner_too_slow_for_the_budget_is_topped_up_to_min_runs():
    log: list[str] = []
    budget = LatencyBudget(warmup=1, min_runs=3, max_runs=100, seconds=0.001, rounds=1)
    (result,) = measure_interleaved([FakeRunner("slow", 0.005, log)], FEEDS, budget)
    assert result.runs == 3
    assert len(log) == 4


def test_latency_per_sample_and_json():
    latency = Latency(batch=4, p50_ms=2.0, p99_ms=3.123456, runs=10)
    assert latency.per_sample_ms == 0.5
    assert json.loads(json.dumps(latency.to_json())) == {"batch": 4, "p50_ms": 2.0, "p99_ms": 3.1235, "runs": 10}


@pytest.mark.parametrize("batch", [1, 3, 5, 8])
def test_tile_feeds_to_a_batch(batch):
    feeds = {"x": np.arange(3, dtype=np.float32).reshape(3, 1), "ids": np.array([[7], [8], [9]])}

    tiled = tile_feeds(feeds, batch)

    want = [i % 3 for i in range(batch)]
    np.testing.assert_array_equal(tiled["x"][:, 0], np.array(want, np.float32))
    np.testing.assert_array_equal(tiled["ids"][:, 0], np.array(want) + 7)
    assert tiled["x"].dtype == np.float32
    assert all(a.flags.c_contiguous for a in tiled.values())
