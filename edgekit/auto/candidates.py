"""The variants auto mode tries, and how it picks the result among those that meet the budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edgekit import passes
from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import onnx

    from edgekit.measure.latency import Ratio
    from edgekit.passes.base import PassConfig
    from edgekit.report import ModelMeasurement

Prefer = Literal["latency", "size"]
PREFERENCES: tuple[Prefer, ...] = ("latency", "size")
#: the FP32 model after clean-up: the yardstick for speed, and the result when nothing compressed is faster
FP32 = "fp32"
#: dynamic INT8 for the ops it suits: MatMul (Gemm is rewritten as MatMul), recurrent, Gather, attention
DYNAMIC_OPS = ("MatMul", "Attention", "LSTM", "Gather", "EmbedLayerNormalization")
#: 4-bit weight-only block sizes, most faithful last; weight-only candidates are tried only on models whose size
#: is large MatMul weights
INT4_BLOCKS = (128, 64, 32)


@dataclass(frozen=True)
class Candidate:
    """A variant to try: a pass and its config."""

    name: str
    pass_name: str
    config: PassConfig
    #: tried only where large constant MatMul weights are much of the model (auto mode's 4-bit candidates)
    needs_large_matmuls: bool = False

    def suits(self, model: onnx.ModelProto) -> bool:
        """Whether the search should try this candidate on ``model``."""
        from edgekit.passes.quantize_weight_only import has_large_matmuls

        return not self.needs_large_matmuls or has_large_matmuls(model)

    @property
    def falls_back(self) -> bool:
        """Whether the candidate can keep its most sensitive nodes in float: INT8, and FP16 (mixed precision)."""
        return self.pass_name in {passes.QuantizeStatic.name, passes.QuantizeDynamic.name, passes.ConvertFp16.name}

    def excluding(self, nodes: Sequence[str]) -> Candidate:
        """The same candidate with ``nodes`` kept in float (on top of those its config excludes)."""
        config = self.config
        kept = tuple(getattr(config, "nodes_to_exclude", ()))
        config = dataclasses.replace(config, nodes_to_exclude=(*kept, *nodes))  # type: ignore[type-var]
        return Candidate(self.name, self.pass_name, config, self.needs_large_matmuls)


def auto_candidates(
    *,
    fp16: passes.Fp16Config,
    dynamic: passes.QuantizeDynamicConfig,
    static: passes.QuantizeStaticConfig,
    has_calibration: bool,
) -> list[Candidate]:
    """FP16, INT8 dynamic (per-tensor, per-channel), INT8 static given calibration data, weight-only INT8 and INT4.

    The weight-only candidates (``int8-weight`` in blocks of 128; ``int4-weight``, ``-b64``, ``-b32`` in
    blocks of 128, 64 and 32) keep activations in float and store embedding tables as INT8.
    ``dynamic`` and ``static`` carry the user's ``reduce_range`` and exclusions; the op types and
    per-channel choice of the dynamic candidates are auto mode's own. The 4-bit ones are tried only
    where large MatMul weights are much of the model (:meth:`Candidate.suits`); of those that meet the
    budget the choice takes the smallest (the largest block) unless a smaller block is faster.
    """
    dyn = dataclasses.replace(dynamic, op_types=DYNAMIC_OPS, per_channel=False)
    out = [
        Candidate(passes.ConvertFp16.name, passes.ConvertFp16.name, fp16),
        Candidate("int8-dynamic", passes.QuantizeDynamic.name, dyn),
        Candidate("int8-dynamic-pc", passes.QuantizeDynamic.name, dataclasses.replace(dyn, per_channel=True)),
    ]
    if has_calibration:
        out.append(Candidate("int8-static", passes.QuantizeStatic.name, static))
    w8 = passes.QuantizeWeight8.name
    out.append(Candidate(w8, w8, passes.QuantizeWeight8Config(), needs_large_matmuls=True))
    for block in INT4_BLOCKS:
        name = passes.QuantizeWeight4.name + ("" if block == INT4_BLOCKS[0] else f"-b{block}")
        config = passes.QuantizeWeight4Config(block_size=block)
        out.append(Candidate(name, passes.QuantizeWeight4.name, config, needs_large_matmuls=True))
    return out


def speedup(m: ModelMeasurement, reference: ModelMeasurement) -> float:
    """How many times faster than ``reference``: over the batch sizes both timed, the median per-round ratio.

    The geometric mean over batch sizes of the reference's time over ``m``'s, round by round
    (:func:`~edgekit.measure.latency.time_ratio`); from the p50s when the latencies have no rounds.
    """
    from edgekit.measure.latency import time_ratio

    return 1.0 / time_ratio(m.latency, reference.latency).point


def clearly_slower(ratio: Ratio, margin: float) -> bool:
    """Whether a time ratio says "slower" beyond doubt, with ``margin`` = 1 + the tolerance.

    Either the whole 95% interval lies beyond ``margin``, or the interval lies above 1 and the median is
    beyond ``margin`` by another half tolerance. The interval comes from one run's rounds, but the median
    itself drifts between runs by a few percent (a session's memory layout, the neighbours of that
    minute: the LSTM's dynamic INT8 timed 1.00-1.05x FP32 in five runs with intervals a hundredth wide),
    so a median near the margin is no evidence; and a noisy run widens the interval, so the interval
    alone would let a model 10% slower in every run count as equal in some of them (the digits MLP's).
    """
    beyond = 1.0 + 1.5 * (margin - 1.0)
    return ratio.low > margin or (ratio.low > 1.0 and ratio.point > beyond)


@dataclass(frozen=True)
class Choice:
    """The model chosen and the reasons, one line each."""

    name: str
    notes: list[str]


def _in_the_running(
    fp32: ModelMeasurement,
    *,
    fastest: ModelMeasurement,
    meeting: Sequence[ModelMeasurement],
    speed: dict[str, float],
    margins: tuple[float, float],
    yardstick: str,
) -> tuple[list[ModelMeasurement], list[str]]:
    """The variants not clearly slower than ``fp32`` (by ``margins[0]``) nor the fastest (by ``margins[1]``).

    With a note for each left out, saying which yardstick it failed.
    """
    from edgekit.measure.latency import time_ratio

    margin, far = margins
    tier, notes = [], []
    for m in meeting:
        head = f"{m.name} meets the budget but is slower ({speed[m.name]:.2f}x {yardstick}'s speed on this CPU"
        vs_fp32, vs_fastest = time_ratio(m.latency, fp32.latency), time_ratio(m.latency, fastest.latency)
        if clearly_slower(vs_fp32, margin):
            notes.append(f"{head}; its time {vs_fp32.text()}x FP32's, clearly beyond {margin:.2f})")
        elif m is not fastest and clearly_slower(vs_fastest, far):
            notes.append(
                f"{head}; its time {vs_fastest.text()}x the fastest's, {fastest.name} at "
                f"{speed[fastest.name]:.2f}x, clearly beyond {far:.2f})"
            )
        else:
            tier.append(m)
    return tier, notes


def choose(
    original: ModelMeasurement,
    fp32: ModelMeasurement,
    meeting: Sequence[ModelMeasurement],
    *,
    prefer: Prefer,
    tolerance: float,
    behind: float = 0.25,
    yardstick: str = "the original",
    kept: str = "FP32 (the cleaned-up graph",
) -> Choice:
    """Pick among the compressed models that meet the budget (``meeting``, never empty here).

    Speeds are relative to the user's ``original`` model (for TFLite variants: the FP32 ``.tflite``, which
    ``yardstick`` and ``kept`` name in the notes). ``latency``: a variant is in the running unless, from the
    paired timing rounds (:func:`clearly_slower`), its time is clearly beyond ``1 + tolerance`` times
    ``fp32``'s (the cleaned-up graph: a fixed yardstick, so nothing slower than FP32 is taken), or clearly
    beyond ``1 + behind`` times the fastest's of all the models timed (the original and ``fp32`` included).
    Among those in the running, the smallest wins. The wide second margin is what keeps the choice from
    run to run: when FP16 and dynamic INT8 run at the same speed, whichever times fastest changes with the
    noise, and a 5% margin against it let the other flip in and out (the PP-OCR classifier, one run in
    five under load); a variant only 25% slower than the fastest in every run stays out. Sizes do not
    change from run to run. When no compressed model is in the running, ``fp32`` is kept. ``size``: the
    smallest, whatever its speed, with a note when it is clearly slower than FP32.
    """
    from edgekit.measure.latency import time_ratio

    if prefer not in PREFERENCES:
        raise ConfigError(f"--prefer '{prefer}' is unknown: choose from {', '.join(PREFERENCES)}")
    pool = list({id(m): m for m in [original, fp32, *meeting]}.values())
    speed = {m.name: speedup(m, original) for m in pool}
    margin, far = 1.0 + tolerance, 1.0 + behind
    if prefer == "size":
        chosen = min(meeting, key=lambda m: (m.size.raw, -speed[m.name]))
        notes = []
        vs_fp32 = time_ratio(chosen.latency, fp32.latency)
        if clearly_slower(vs_fp32, margin):
            notes.append(
                f"{chosen.name} is {speed[chosen.name]:.2f}x FP32's speed on this CPU (time {vs_fp32.text()}x "
                f"FP32's); chosen because --prefer size"
            )
        return Choice(chosen.name, notes)
    fastest = max(pool, key=lambda m: speed[m.name])
    tier, notes = _in_the_running(
        fp32, fastest=fastest, meeting=meeting, speed=speed, margins=(margin, far), yardstick=yardstick
    )
    if not tier:
        smallest = min(meeting, key=lambda m: m.size.raw)
        notes.append(
            f"kept {kept}, {speed[fp32.name]:.2f}x): every variant that meets the budget is clearly slower than "
            f"FP32 on this CPU (by more than {tolerance:.0%} beyond the timing noise) or than the fastest (by more "
            f"than {behind:.0%}); --prefer size takes {smallest.name} ({smallest.size.raw / original.size.raw:.0%} "
            f"of the size)"
        )
        return Choice(fp32.name, notes)
    chosen = min(tier, key=lambda m: (m.size.raw, -speed[m.name]))
    head = f"{chosen.name} ({speed[chosen.name]:.2f}x {yardstick}'s speed)"
    if chosen is fastest:
        notes.append(f"{head} is the fastest" + (" and the smallest of those in the running" if len(tier) > 1 else ""))
    else:
        notes.append(
            f"{head} is the smallest of those in the running: not clearly slower than FP32 (the 95% interval of "
            f"the time ratio above {margin:.2f}, or above 1 with the median above {1 + 1.5 * tolerance:.3g}) "
            f"nor than the fastest, {fastest.name} at {speed[fastest.name]:.2f}x, by that rule at {far:.2f}"
        )
    faster = list({id(m): m for m in (fastest, fp32) if m is not chosen}.values())
    for other in sorted(faster, key=lambda m: -speed[m.name]):
        if speed[other.name] <= speed[chosen.name]:
            continue
        r = time_ratio(chosen.latency, other.latency)
        bound = margin if other is fp32 else far
        notes.append(
            f"{chosen.name} and {other.name} count as level (time ratio {r.text()}, not clearly beyond "
            f"{bound:.2f}): the smaller, {chosen.name}"
        )
    return Choice(chosen.name, notes)
