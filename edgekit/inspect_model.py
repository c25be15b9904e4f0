"""``edgekit inspect``: what a model is, in one screen.

An ONNX file is read as it is; a source another importer reads (a scikit-learn pickle, an MLflow folder, a
PyTorch factory) is shown as the ONNX model edgekit makes of it, the model ``compress`` and ``bundle pack`` work on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit import graph_stats
from edgekit.errors import ModelError
from edgekit.model_io import load_model

if TYPE_CHECKING:
    import onnx

    from edgekit.importers import ImportOptions, Kind


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
    #: the importer that read the source: ``onnx`` for a file read as is, else what it was converted from
    kind: Kind = "onnx"
    #: what the importer did or assumed (``Imported.notes``)
    notes: tuple[str, ...] = ()

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
            "kind": self.kind,
            "notes": list(self.notes),
        }


def summarize(
    model: onnx.ModelProto, path: Path | str, file_bytes: int, kind: Kind = "onnx", notes: tuple[str, ...] = ()
) -> ModelSummary:
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
        kind=kind,
        notes=notes,
    )


def inspect_path(path: Path) -> ModelSummary:
    """Load and summarise a model file (its size counts external data files too)."""
    loaded = load_model(path)
    return summarize(loaded.model, path, loaded.file_bytes)


def inspect_source(source: str, options: ImportOptions | None = None) -> ModelSummary:
    """Summarise an ONNX file, or the ONNX model edgekit's importer makes of ``source`` (its size is the ONNX's)."""
    from edgekit.importers import detect, import_model

    kind = detect(source)
    if kind == "tflite" and Path(source).is_file():
        raise ModelError(
            f"'{source}' is a TFLite model, which edgekit packs as is: run edgekit bundle pack '{source}', "
            "then edgekit bundle inspect on the bundle it writes"
        )
    if kind in ("onnx", "tflite"):  # a .tflite file that is not there: load_model says so
        return inspect_path(Path(source))
    imported = import_model(source, options)
    model = imported.require_onnx()
    return summarize(model, source, model.ByteSize(), kind=kind, notes=imported.notes)
