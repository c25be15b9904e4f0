"""What the budgeted search tried, what it kept in float and why, and its verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.auto.budget import Budget
    from edgekit.auto.metrics import Metric
    from edgekit.auto.sensitivity import NodeSensitivity
    from edgekit.measure.latency import Latency


@dataclass
class Trial:
    """One model the search built and scored."""

    #: the candidate it belongs to (``int8-static``, ``fp16``, ...)
    candidate: str
    #: ``"candidate"`` for the first try, ``"fallback"`` for a try with nodes kept in float
    step: str
    config: dict[str, Any]
    excluded: tuple[str, ...] = ()
    size_bytes: int | None = None
    metric: float | None = None
    meets_budget: bool | None = None
    seconds: float = 0.0
    error: str | None = None
    #: filled for the trials whose model was kept and timed (candidates, the best fallback)
    latency: list[Latency] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Built or loaded with an error (``error`` says why): neither met nor missed."""
        return self.error is not None

    @property
    def status(self) -> str | None:
        """``failed``, ``met``, ``missed``, or ``None`` for a trial not judged."""
        if self.failed:
            return "failed"
        return None if self.meets_budget is None else "met" if self.meets_budget else "missed"

    def to_json(self) -> dict[str, Any]:
        """Serialisable form; superseded fallback trials were not timed (``latency`` is empty)."""
        return {
            "candidate": self.candidate,
            "step": self.step,
            "config": self.config,
            "kept_in_float": list(self.excluded),
            "size_bytes": self.size_bytes,
            "metric": None if self.metric is None else round(self.metric, 6),
            "meets_budget": self.meets_budget,
            "latency": [lat.to_json() for lat in self.latency],
            "seconds": round(self.seconds, 2),
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class KeptFloat:
    """A node the fallback left in float, and the evidence for it."""

    rank: int
    sensitivity: NodeSensitivity

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        s = self.sensitivity
        return s.to_json() | {
            "rank": self.rank,
            "why": f"rank {self.rank} by added quantization noise (output SQNR {s.sqnr_db:.1f} dB); "
            "the metric met the budget only with it in float",
        }


@dataclass
class Verdict:
    """Whether the written model meets the budget, by how much it missed, and what to try."""

    met: bool
    #: metric value the budget requires (the worst allowed)
    threshold: float
    #: the written model's metric
    value: float
    #: how far short of the threshold (0 when met), in the metric's units
    missed_by: float = 0.0
    advice: str = ""
    #: when no compressed variant met the budget: what each candidate reached, or why it failed, one clause each
    tried: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        return {
            "met": self.met,
            "threshold": round(self.threshold, 6),
            "value": round(self.value, 6),
            "missed_by": round(self.missed_by, 6),
            "advice": self.advice,
            "tried": self.tried,
        }


@dataclass
class AutoResult:
    """The whole budgeted search, as ``report.json`` keeps it."""

    budget: Budget
    metric: Metric
    #: the metric of the FP32 model the budget is measured from
    baseline: float
    prefer: str
    trials: list[Trial] = field(default_factory=list)
    #: per candidate that needed a fallback: nodes by sensitivity, most harmful first
    sensitivity: dict[str, list[NodeSensitivity]] = field(default_factory=dict)
    #: per fallback candidate written or measured: the nodes kept in float
    kept_float: dict[str, list[KeptFloat]] = field(default_factory=dict)
    #: per candidate measured: its metric and whether it meets the budget
    scores: dict[str, float] = field(default_factory=dict)
    #: why the result was chosen over the others (one line each)
    choice: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "budget": self.budget.to_json(),
            "metric": self.metric.to_json(),
            "baseline": round(self.baseline, 6),
            "prefer": self.prefer,
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "trials": [t.to_json() for t in self.trials],
            "sensitivity": {k: [s.to_json() for s in v] for k, v in self.sensitivity.items()},
            "kept_in_float": {k: [n.to_json() for n in v] for k, v in self.kept_float.items()},
            "choice": self.choice,
            "verdict": None if self.verdict is None else self.verdict.to_json(),
            "stopped": self.stopped,
        }
