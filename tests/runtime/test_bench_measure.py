"""``edgekit_runtime.bench_measure``: timing calls, summarising them, and the samples they are fed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit_runtime import bench_measure as bench
from edgekit_runtime.model import load

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def test_time_calls_runs_long_enough_and_often_enough():
    ticks = iter(range(0, 10**9, 1000))  # a clock that moves 1 µs per reading
    calls = []
    durations = bench.time_calls(lambda: calls.append(1), seconds=0.0, min_calls=5, clock=lambda: next(ticks))
    assert len(durations) == len(calls) == 5
    assert set(durations) == {1000}
    ticks = iter(range(0, 10**9, 1000))
    durations = bench.time_calls(lambda: None, seconds=20e-6, min_calls=1, clock=lambda: next(ticks))
    assert len(durations) > 1  # went on until 20 µs passed


def test_summarize_in_milliseconds():
    timing = bench.summarize([1_000_000] * 99 + [11_000_000], threads=2, batch=4)
    assert (timing.calls, timing.threads, timing.batch) == (100, 2, 4)
    assert timing.p50_ms == 1.0
    assert timing.p99_ms == pytest.approx(1.1)  # NumPy's linear interpolation between the 99th and 100th
    assert timing.mean_ms == pytest.approx(1.1)
    assert timing.samples_per_s == pytest.approx(4 * 100 / 0.11)


def test_sample_feeds_repeat_the_golden_samples_to_fill_a_batch():
    model = load(DIGITS / "mlp.onnx")
    golden = {model.inputs[0].name: np.arange(3 * 64, dtype=np.float32).reshape(3, 64)}
    feeds = bench.sample_feeds(model, golden, 5)
    value = feeds[model.inputs[0].name]
    assert value.shape == (5, 64)
    np.testing.assert_array_equal(value[3], golden[model.inputs[0].name][0])
    random = bench.sample_feeds(model, None, 2)[model.inputs[0].name]
    assert random.shape == (2, 64)
    assert random.dtype == np.float32
