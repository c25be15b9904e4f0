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
    original: ModelMeasurement,
    fp32: ModelMeasurement,
    meeting: Sequence[ModelMeasurement],
    *,
    prefer: Prefer,
    tolerance: float,
    yardstick: str = "the original",
    kept: str = "FP32 (the cleaned-up graph",
) -> Choice:
    """Pick among the compressed models that meet the budget (``meeting``, never empty here).

    Speeds are relative to the user's ``original`` model (for TFLite variants: the FP32 ``.tflite``, which
    ``yardstick`` and ``kept`` name in the notes). ``latency``: the fastest, counting speeds
    within ``tolerance`` of the fastest (and of the original's) as equal, then the smallest; ``fp32``
    (the cleaned-up graph) is in the race and is taken when nothing compressed keeps up, so no
    variant slower than FP32 is picked. ``size``: the smallest, whatever its speed, with a note when
    it is slower.
    """
    if prefer not in PREFERENCES:
        raise ConfigError(f"--prefer '{prefer}' is unknown: choose from {', '.join(PREFERENCES)}")
    speed = {m.name: speedup(m, original) for m in [fp32, *meeting]}
    slow = 1.0 / (1.0 + tolerance)
    if prefer == "size":
        chosen = min(meeting, key=lambda m: (m.size.raw, -speed[m.name]))
        notes = []
        if speed[chosen.name] < slow:
            notes.append(
                f"{chosen.name} is {speed[chosen.name]:.2f}x FP32's speed on this CPU; chosen because --prefer size"
            )
        return Choice(chosen.name, notes)
    best = max(1.0, *speed.values())
    tier = [m for m in meeting if speed[m.name] >= best * slow]
    notes = [
        f"{m.name} meets the budget but is slower ({speed[m.name]:.2f}x {yardstick}'s speed on this CPU, "
        f"the fastest {best:.2f}x)"
        for m in meeting
        if m not in tier
    ]
    if not tier:
        smallest = min(meeting, key=lambda m: m.size.raw)
        notes.append(
            f"kept {kept}, {speed[fp32.name]:.2f}x): no variant that meets the budget is within "
            f"{tolerance:.0%} of the fastest on this CPU; --prefer size takes {smallest.name} "
            f"({smallest.size.raw / original.size.raw:.0%} of the size)"
        )
        return Choice(fp32.name, notes)
    chosen = min(tier, key=lambda m: (m.size.raw, -speed[m.name]))
    others = ", ".join(f"{m.name} {speed[m.name]:.2f}x" for m in tier if m is not chosen)
    notes.append(
        f"{chosen.name} ({speed[chosen.name]:.2f}x FP32) is the smallest of those within {tolerance:.0%} of the "
        f"fastest" + (f" ({others})" if others else "")
    )
    return Choice(chosen.name, notes)
