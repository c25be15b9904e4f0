"""A pipeline is a plain loop over passes; each step leaves a :class:`PassResult`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.graph_stats import op_histogram, weight_stats

if TYPE_CHECKING:
    from collections.abc import Sequence

    import onnx

    from edgekit.passes.base import Pass, PassContext


@dataclass(frozen=True)
class GraphFacts:
    """Before/after numbers a pass is judged by."""

    nodes: int
    params: int
    weight_bytes: int
    ops: dict[str, int]

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphFacts:
        """Read the facts off a model."""
        stats = weight_stats(model)
        return cls(len(model.graph.node), stats.param_count, stats.total_bytes, op_histogram(model))

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "nodes": self.nodes,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "ops": self.ops,
        }


@dataclass
class PassResult:
    """What one pass did: its config, time taken, graph before and after, details, warnings."""

    name: str
    config: dict[str, Any]
    seconds: float
    before: GraphFacts
    after: GraphFacts
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "name": self.name,
            "config": self.config,
            "seconds": round(self.seconds, 3),
            "before": self.before.to_json(),
            "after": self.after.to_json(),
            "details": self.details,
            "warnings": self.warnings,
        }


class Pipeline:
    """Run passes in order, each on the previous one's output."""

    def __init__(self, passes: Sequence[Pass]) -> None:
        """Keep the passes."""
        self.passes = list(passes)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> tuple[onnx.ModelProto, list[PassResult]]:
        """Return the final model and one result per pass."""
        results = []
        before = GraphFacts.of(model)
        for p in self.passes:
            start = time.perf_counter()
            out = p.run(model, ctx)
            seconds = time.perf_counter() - start
            after = GraphFacts.of(out.model)
            results.append(PassResult(p.name, p.config.to_json(), seconds, before, after, out.details, out.warnings))
            model, before = out.model, after
        return model, results
