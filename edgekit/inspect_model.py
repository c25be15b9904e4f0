"""``edgekit inspect``: what a model is, in one screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit import graph_stats
from edgekit.model_io import load_model

if TYPE_CHECKING:
    from pathlib import Path

    import onnx


@dataclass(frozen=True)
class ModelSummary:
    """Everything ``edgekit inspect`` shows, serialisable to JSON."""

    path: str
    file_bytes: int
    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: list[graph_stats.TensorSpec]
    outputs: list[graph_stats.TensorSpec]
    node_count: int
    op_histogram: dict[str, int]
    weights: graph_stats.WeightStats
    quantized: str | None

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        return {
            "path": self.path,
            "file_bytes": self.file_bytes,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "opsets": self.opsets,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "node_count": self.node_count,
            "op_histogram": self.op_histogram,
            "param_count": self.weights.param_count,
            "weight_bytes_by_dtype": self.weights.bytes_by_dtype,
            "quantized": self.quantized,
        }


def summarize(model: onnx.ModelProto, path: Path, file_bytes: int) -> ModelSummary:
    """Summarise a loaded model."""
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return ModelSummary(
        path=str(path),
        file_bytes=file_bytes,
        ir_version=model.ir_version,
        producer=producer or "unknown",
        opsets=graph_stats.opsets(model),
        inputs=graph_stats.graph_inputs(model),
        outputs=graph_stats.graph_outputs(model),
        node_count=len(model.graph.node),
        op_histogram=graph_stats.op_histogram(model),
        weights=graph_stats.weight_stats(model),
        quantized=graph_stats.quantization_state(model),
    )


def inspect_path(path: Path) -> ModelSummary:
    """Load and summarise a model file (its size counts external data files too)."""
    loaded = load_model(path)
    return summarize(loaded.model, path, loaded.file_bytes)
