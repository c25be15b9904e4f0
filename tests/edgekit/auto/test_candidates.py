"""Choosing among the variants that meet the budget."""

from __future__ import annotations

import pytest

from edgekit import passes
from edgekit.auto.candidates import FP32, auto_candidates, choose, clearly_slower, speedup
from edgekit.errors import ConfigError
from edgekit.measure.latency import Latency, time_ratio
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
    assert [c.name for c in without][:3] == ["fp16", "int8-dynamic", "int8-dynamic-pc"]
    assert "int8-static" not in [c.name for c in without]
    assert [c.config.per_channel for c in without[1:3]] == [False, True]  # type: ignore[attr-defined]
    assert all(c.config.reduce_range is True for c in without[1:3])  # type: ignore[attr-defined]
    assert "int8-static" in [c.name for c in auto_candidates(**kwargs, has_calibration=True)]


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
    assert cand.falls_back


# ---- the choice from paired timing rounds: equal unless the difference is clearly beyond the noise

#: 15 rounds of a busy neighbour coming and going: every model timed in a round sees the same factor
NOISE = [1.0, 1.9, 1.1, 1.4, 1.0, 2.3, 1.2, 1.0, 1.6, 1.1, 1.0, 1.8, 1.3, 1.0, 1.5]
#: on top of it, each model's own jitter in each round, up to ±6% (so two equal models trade places)
JITTER = [0.97, 1.05, 0.99, 1.02, 0.95, 1.03, 1.0, 0.98, 1.06, 0.96, 1.01, 1.04, 0.97, 1.0, 0.99]


def _timed(name, size, ms, jitter):
    rounds = [ms * n * j for n, j in zip(NOISE, jitter, strict=True)]
    lat = [Latency(1, sorted(rounds)[7], max(rounds), 150, tuple(rounds))]
    return ModelMeasurement(name, Size(size, size), lat)


def _shifted(k):
    return JITTER[k:] + JITTER[:k]


ORIG_T = _timed("original", 1000, 1.0, _shifted(1))
FP32_T = _timed(FP32, 1000, 1.0, _shifted(2))


def test_noisy_equals_go_to_the_smaller_whichever_timed_faster():
    # the same two models, their jitter swapped: fp16 times faster in one run, int8-static in the other
    faster = set()
    for fp16_jitter, int8_jitter in [(_shifted(3), _shifted(4)), (_shifted(4), _shifted(3))]:
        fp16 = _timed("fp16", 500, 0.8, fp16_jitter)
        int8 = _timed("int8-static", 300, 0.8, int8_jitter)
        faster.add("fp16" if speedup(fp16, ORIG_T) > speedup(int8, ORIG_T) else "int8-static")
        choice = choose(ORIG_T, FP32_T, [fp16, int8], prefer="latency", tolerance=0.05)
        assert choice.name == "int8-static"
        if speedup(fp16, ORIG_T) > speedup(int8, ORIG_T):
            assert any(n.startswith("int8-static and fp16 count as level (time ratio ") for n in choice.notes)
    assert faster == {"fp16", "int8-static"}  # each timed faster once


def test_an_int8_level_with_fp32_is_taken_though_it_timed_slower():
    int8 = _timed("int8-static", 300, 1.03, _shifted(5))  # 3% slower: within the noise and the 5% margin
    choice = choose(ORIG_T, FP32_T, [int8], prefer="latency", tolerance=0.05)
    assert choice.name == "int8-static"


def test_a_clearly_faster_variant_wins_over_a_smaller_one():
    fp16 = _timed("fp16", 500, 0.6, _shifted(3))
    int8 = _timed("int8-static", 300, 0.8, _shifted(4))  # a third slower than fp16, far beyond the noise
    choice = choose(ORIG_T, FP32_T, [fp16, int8], prefer="latency", tolerance=0.05)
    assert choice.name == "fp16"
    assert any(n.startswith("int8-static meets the budget but is slower") for n in choice.notes)


def test_fp32_is_kept_when_every_variant_is_clearly_slower():
    int8 = _timed("int8-static", 300, 1.3, _shifted(5))
    choice = choose(ORIG_T, FP32_T, [int8], prefer="latency", tolerance=0.05)
    assert choice.name == FP32
    assert any("--prefer size takes int8-static" in n for n in choice.notes)


def test_prefer_size_takes_the_smallest_even_when_clearly_slower():
    fp16 = _timed("fp16", 500, 0.6, _shifted(3))
    int8 = _timed("int8-static", 300, 1.3, _shifted(4))
    choice = choose(ORIG_T, FP32_T, [fp16, int8], prefer="size", tolerance=0.05)
    assert choice.name == "int8-static"
    assert "chosen because --prefer size" in choice.notes[0]
    level = _timed("int8-static", 300, 1.0, _shifted(4))
    assert choose(ORIG_T, FP32_T, [fp16, level], prefer="size", tolerance=0.05).notes == []


def test_ten_percent_slower_in_every_round_is_slower_even_in_a_noisy_run():
    # the MLP case: int8-dynamic 10% slower than fp32 round after round; a noisy run widens the interval to
    # reach below 1.05, and the choice must not flip to it
    jitter = [1.0, 0.91, 0.92, 1.0, 0.93, 1.0, 0.93, 1.0, 1.0, 0.94, 1.0, 0.92, 1.0, 1.0, 1.0]
    int8 = _timed("int8-dynamic", 300, 1.1, [j * k for j, k in zip(jitter, _shifted(2), strict=True)])
    ratio = time_ratio(int8.latency, FP32_T.latency)
    assert ratio.low < 1.05 < ratio.point
    assert clearly_slower(ratio, 1.05)
    assert choose(ORIG_T, FP32_T, [int8], prefer="latency", tolerance=0.05).name == FP32


def test_beyond_the_margin_but_within_the_noise_counts_as_equal():
    jitter = [0.8, 1.3, 0.9, 1.25, 0.85, 1.2, 1.1, 0.95, 1.3, 0.9, 1.15, 0.8, 1.2, 1.05, 1.1]
    int8 = _timed("int8-static", 300, 1.03, jitter)
    ratio = time_ratio(int8.latency, FP32_T.latency)
    assert ratio.point > 1.05
    assert ratio.low < 1.0
    assert choose(ORIG_T, FP32_T, [int8], prefer="latency", tolerance=0.05).name == "int8-static"


def test_a_median_just_past_the_margin_is_no_evidence_however_narrow_the_interval():
    # the Conv+LSTM case: dynamic INT8 times 1.00-1.06x FP32 from run to run, each run's interval narrow
    small = [1.0, 0.98, 1.0, 0.985, 1.0, 0.98, 1.0, 1.0, 0.985, 1.0, 1.0, 1.0, 0.99, 1.0, 1.0]
    int8 = _timed("int8-dynamic", 300, 1.06, [j * k for j, k in zip(_shifted(2), small, strict=True)])
    ratio = time_ratio(int8.latency, FP32_T.latency)
    assert ratio.low > 1.0
    assert ratio.point > 1.05
    assert not clearly_slower(ratio, 1.05)
    assert choose(ORIG_T, FP32_T, [int8], prefer="latency", tolerance=0.05).name == "int8-dynamic"


def test_two_variants_level_with_fp32_do_not_decide_each_others_fate():
    # the classifier under load: fp16 (the smaller) and int8-dynamic both run at FP32's speed, and in one run
    # int8-dynamic timed clearly faster than fp16 by the 5% rule; fp16 must still be taken, in both runs
    for fp16_ms, int8_ms in [(1.0, 0.99), (1.0, 0.88)]:
        fp16 = _timed("fp16", 540, fp16_ms, _shifted(3))
        int8 = _timed("int8-dynamic", 700, int8_ms, _shifted(4))
        choice = choose(ORIG_T, FP32_T, [fp16, int8], prefer="latency", tolerance=0.05)
        assert choice.name == "fp16", choice.notes
    assert clearly_slower(time_ratio(fp16.latency, int8.latency), 1.05)  # the second run: the old rule's flip
    assert any(n.startswith("fp16 and int8-dynamic count as level (time ratio ") for n in choice.notes)
    assert any("not clearly beyond 1.25" in n for n in choice.notes)


def test_a_smaller_variant_far_behind_the_fastest_is_out_though_level_with_fp32():
    fast = _timed("int8-static", 300, 0.5, _shifted(3))
    small = _timed("int4-weight", 150, 1.0, _shifted(4))  # FP32's speed, twice the fastest's time
    choice = choose(ORIG_T, FP32_T, [fast, small], prefer="latency", tolerance=0.05)
    assert choice.name == "int8-static"
    (note,) = [n for n in choice.notes if n.startswith("int4-weight meets the budget but is slower")]
    assert "the fastest's, int8-static at" in note
    assert "clearly beyond 1.25" in note


def test_a_variant_clearly_slower_than_fp32_is_out_though_within_reach_of_the_fastest():
    int8 = _timed("int8-dynamic", 300, 1.15, _shifted(5))  # 15% slower than FP32 every round
    choice = choose(ORIG_T, FP32_T, [int8], prefer="latency", tolerance=0.05)
    assert choice.name == FP32
    assert any("FP32's, clearly beyond 1.05" in n for n in choice.notes)
