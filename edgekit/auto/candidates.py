"""The variants auto mode tries, and how it picks the result among those that meet the budget."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edgekit import passes
from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit.passes.base import PassConfig
    from edgekit.report import ModelMeasurement

Prefer = Literal["latency", "size"]
PREFERENCES: tuple[Prefer, ...] = ("latency", "size")
#: the FP32 model after clean-up: the yardstick for speed, and the result when nothing compressed is faster
FP32 = "fp32"
#: dynamic INT8 for the ops it suits: MatMul (Gemm is rewritten as MatMul), recurrent, Gather, attention
DYNAMIC_OPS = ("MatMul", "Attention", "LSTM", "Gather", "EmbedLayerNormalization")


@dataclass(frozen=True)
class Candidate:
    """A variant to try: a pass and its config."""

    name: str
    pass_name: str
    config: PassConfig

    @property
    def quantizes(self) -> bool:
        """INT8 candidates can keep sensitive nodes in float."""
        return self.pass_name in {passes.QuantizeStatic.name, passes.QuantizeDynamic.name}

    def excluding(self, nodes: Sequence[str]) -> Candidate:
        """The same candidate with ``nodes`` kept in float (on top of those its config excludes)."""
        config = self.config
        kept = tuple(getattr(config, "nodes_to_exclude", ()))
        config = dataclasses.replace(config, nodes_to_exclude=(*kept, *nodes))  # type: ignore[type-var]
        return Candidate(self.name, self.pass_name, config)


def auto_candidates(
    *,
    fp16: passes.Fp16Config,
    dynamic: passes.QuantizeDynamicConfig,
    static: passes.QuantizeStaticConfig,
    has_calibration: bool,
) -> list[Candidate]:
    """FP16, INT8 dynamic per-tensor and per-channel, and INT8 static QDQ when there is calibration data.

    ``dynamic`` and ``static`` carry the user's ``reduce_range`` and exclusions; the op types and
    per-channel choice of the dynamic candidates are auto mode's own.
    """
    dyn = dataclasses.replace(dynamic, op_types=DYNAMIC_OPS, per_channel=False)
    out = [
        Candidate(passes.ConvertFp16.name, passes.ConvertFp16.name, fp16),
        Candidate("int8-dynamic", passes.QuantizeDynamic.name, dyn),
        Candidate("int8-dynamic-pc", passes.QuantizeDynamic.name, dataclasses.replace(dyn, per_channel=True)),
    ]
    if has_calibration:
        out.append(Candidate("int8-static", passes.QuantizeStatic.name, static))
    return out


def speedup(m: ModelMeasurement, reference: ModelMeasurement) -> float:
    """Geometric mean, over the batch sizes timed, of the reference's p50 over ``m``'s."""
    ratios = []
    for lat in reference.latency:
        mine = m.latency_at(lat.batch)
        if mine is not None and mine.p50_ms > 0:
            ratios.append(lat.p50_ms / mine.p50_ms)
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else 1.0


@dataclass(frozen=True)
class Choice:
    """The model chosen and the reasons, one line each."""

    name: str
    notes: list[str]


def choose(
    fp32: ModelMeasurement,
    meeting: Sequence[ModelMeasurement],
    *,
    prefer: Prefer,
    tolerance: float,
) -> Choice:
    """Pick among the compressed models that meet the budget (``meeting``, never empty here).

    ``latency``: the fastest, counting speeds within ``tolerance`` of the fastest as equal, then the
    smallest; FP32 is in the race, so no compressed model slower than it is taken. ``size``: the
    smallest, whatever its speed, with a note when it is slower than FP32.
    """
    if prefer not in PREFERENCES:
        raise ConfigError(f"--prefer '{prefer}' is unknown: choose from {', '.join(PREFERENCES)}")
    speed = {m.name: speedup(m, fp32) for m in meeting} | {fp32.name: 1.0}
    notes = []
    if prefer == "size":
        chosen = min(meeting, key=lambda m: (m.size.raw, -speed[m.name]))
        if speed[chosen.name] < 1.0 / (1.0 + tolerance):
            notes.append(
                f"{chosen.name} is {speed[chosen.name]:.2f}x FP32's speed on this CPU; chosen because --prefer size"
            )
        return Choice(chosen.name, notes)
    pool = [fp32, *meeting]
    fastest = max(speed[m.name] for m in pool)
    tier = [m for m in pool if speed[m.name] >= fastest / (1.0 + tolerance)]
    chosen = min(tier, key=lambda m: (m.size.raw, -speed[m.name]))
    notes = [
        f"{m.name} meets the budget but is slower ({speed[m.name]:.2f}x FP32's speed on this CPU)"
        for m in meeting
        if m not in tier
    ]
    if chosen is fp32:
        smallest = min(meeting, key=lambda m: m.size.raw)
        notes.append(
            f"kept FP32: no variant that meets the budget is faster on this CPU; --prefer size takes "
            f"{smallest.name} ({smallest.size.raw / fp32.size.raw:.0%} of the size)"
        )
    elif len(tier) > 1:
        others = ", ".join(f"{m.name} {speed[m.name]:.2f}x" for m in tier if m is not chosen)
        notes.append(
            f"{chosen.name} ({speed[chosen.name]:.2f}x FP32) is as fast as the fastest within {tolerance:.0%} "
            f"({others}) and the smallest of them"
        )
    else:
        notes.append(f"{chosen.name} is the fastest that meets the budget ({speed[chosen.name]:.2f}x FP32)")
    return Choice(chosen.name, notes)
