"""Latency: interleaved timing of several runners, and feeds tiled to a batch size."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from edgekit.measure.latency import Latency, LatencyBudget, measure_interleaved, tile_feeds, time_ratio

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
    assert json.loads(json.dumps(latency.to_json())) == {
        "batch": 4,
        "p50_ms": 2.0,
        "p99_ms": 3.1235,
        "runs": 10,
        "spread_ms": 0.0,
        "round_p50_ms": [],
    }


def test_each_round_keeps_its_p50_and_the_spread_is_half_their_iqr():
    budget = LatencyBudget(warmup=1, min_runs=1, max_runs=30, seconds=0.03, rounds=3)
    (result,) = measure_interleaved([FakeRunner("a", 0.0, [])], FEEDS, budget)
    assert len(result.rounds_ms) == 3
    latency = Latency(1, 2.0, 3.0, 40, (1.0, 2.0, 3.0, 4.0, 5.0))
    assert latency.spread_ms == pytest.approx(1.0)  # (4 - 2) / 2
    assert latency.to_json()["round_p50_ms"] == [1.0, 2.0, 3.0, 4.0, 5.0]


def _rounds(values):
    return [Latency(1, float(np.median(values)), max(values), 10 * len(values), tuple(values))]


def test_time_ratio_pairs_the_rounds_so_shared_noise_cancels():
    noise = [1.0, 3.0, 1.2, 2.5, 1.1, 4.0, 1.0, 1.3, 2.2, 1.0, 1.6, 3.3, 1.1, 1.0, 2.0]  # a neighbour comes and goes
    ratio = time_ratio(_rounds([n * 1.2 for n in noise]), _rounds(noise))
    assert ratio.point == pytest.approx(1.2)
    assert (ratio.low, ratio.high) == (pytest.approx(1.2), pytest.approx(1.2))


def test_time_ratio_interval_is_the_sign_test_one_over_the_rounds():
    # 15 rounds: the 95% interval of the median is [4th, 12th] of the sorted ratios
    ratios = [0.90, 0.95, 0.97, 0.98, 0.99, 1.0, 1.0, 1.0, 1.01, 1.02, 1.03, 1.04, 1.06, 1.10, 1.20]
    ratio = time_ratio(_rounds(ratios), _rounds([1.0] * 15))
    assert (ratio.low, ratio.point, ratio.high) == (pytest.approx(0.98), pytest.approx(1.0), pytest.approx(1.04))
    assert ratio.text() == "0.98-1.04"


def test_time_ratio_without_rounds_is_the_p50s_ratio():
    ratio = time_ratio([Latency(1, 2.0, 2.0, 10)], [Latency(1, 1.0, 1.0, 10)])
    assert (ratio.low, ratio.point, ratio.high) == (2.0, 2.0, 2.0)
    assert ratio.text() == "2.00"


@pytest.mark.parametrize("batch", [1, 3, 5, 8])
def test_tile_feeds_to_a_batch(batch):
    feeds = {"x": np.arange(3, dtype=np.float32).reshape(3, 1), "ids": np.array([[7], [8], [9]])}

    tiled = tile_feeds(feeds, batch)

    want = [i % 3 for i in range(batch)]
    np.testing.assert_array_equal(tiled["x"][:, 0], np.array(want, np.float32))
    np.testing.assert_array_equal(tiled["ids"][:, 0], np.array(want) + 7)
    assert tiled["x"].dtype == np.float32
    assert all(a.flags.c_contiguous for a in tiled.values())
