"""Choosing among the variants that meet the budget."""

from __future__ import annotations

import pytest

from edgekit import passes
from edgekit.auto.candidates import FP32, auto_candidates, choose, speedup
from edgekit.errors import ConfigError
from edgekit.measure.latency import Latency
from edgekit.measure.size import Size
from edgekit.report import ModelMeasurement


def _m(name, size, b1_ms, b32_ms):
    lat = [Latency(1, b1_ms, b1_ms, 10), Latency(32, b32_ms, b32_ms, 10)]
    return ModelMeasurement(name, Size(size, size), lat)


FP = _m("original", 1000, 1.0, 10.0)
FP32_CLEAN = _m(FP32, 1000, 1.0, 10.0)


def test_speedup_is_the_geometric_mean_over_batch_sizes():
    assert speedup(_m("a", 1, 0.5, 10.0), FP) == pytest.approx(2**0.5)


def test_latency_prefers_the_fastest_then_the_smallest_among_equals():
    fast_big = _m("int8-dynamic", 700, 0.5, 5.0)
    fast_small = _m("int8-static", 300, 0.51, 5.1)  # within 5% of the fastest
    slow_smallest = _m("fp16", 100, 2.0, 20.0)
    choice = choose(FP, FP32_CLEAN, [fast_big, fast_small, slow_smallest], prefer="latency", tolerance=0.05)
    assert choice.name == "int8-static"
    assert any("fp16 meets the budget but is slower" in n for n in choice.notes)


def test_latency_takes_fp32_when_nothing_compressed_keeps_up():
    slow_int8 = _m("int8-static", 300, 1.5, 15.0)
    choice = choose(FP, FP32_CLEAN, [slow_int8], prefer="latency", tolerance=0.05)
    assert choice.name == FP32
    assert any("--prefer size takes int8-static" in n for n in choice.notes)


def test_size_takes_the_smallest_and_says_when_it_is_slower():
    slow_int8 = _m("int8-static", 300, 1.5, 15.0)
    fp16 = _m("fp16", 500, 1.0, 10.0)
    choice = choose(FP, FP32_CLEAN, [slow_int8, fp16], prefer="size", tolerance=0.05)
    assert choice.name == "int8-static"
    assert "0.67x FP32's speed" in choice.notes[0]
    assert "--prefer size" in choice.notes[0]


def test_unknown_preference_is_refused():
    with pytest.raises(ConfigError, match="--prefer"):
        choose(FP, FP32_CLEAN, [FP], prefer="accuracy", tolerance=0.05)  # type: ignore[arg-type]


def test_auto_candidates_try_static_only_with_calibration_data():
    kwargs = {
        "fp16": passes.Fp16Config(),
        "dynamic": passes.QuantizeDynamicConfig(reduce_range=True),
        "static": passes.QuantizeStaticConfig(),
    }
    without = auto_candidates(**kwargs, has_calibration=False)
    assert [c.name for c in without] == ["fp16", "int8-dynamic", "int8-dynamic-pc"]
    assert [c.config.per_channel for c in without[1:]] == [False, True]  # type: ignore[attr-defined]
    assert all(c.config.reduce_range is True for c in without[1:])  # type: ignore[attr-defined]
    assert [c.name for c in auto_candidates(**kwargs, has_calibration=True)][-1] == "int8-static"


def test_excluding_adds_to_the_configured_exclusions():
    (cand,) = [
        c
        for c in auto_candidates(
            fp16=passes.Fp16Config(),
            dynamic=passes.QuantizeDynamicConfig(nodes_to_exclude=("a",)),
            static=passes.QuantizeStaticConfig(),
            has_calibration=False,
        )
        if c.name == "int8-dynamic"
    ]
    assert cand.excluding(["b"]).config.nodes_to_exclude == ("a", "b")  # type: ignore[attr-defined]
    assert cand.quantizes
