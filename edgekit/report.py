"""The compress report: what was gained (size, latency) and what it cost (fidelity, accuracy).

One :class:`Report` per run, written as ``report.json`` and printed as a table by the CLI. With
``--to tflite`` the variants include ``.tflite`` models measured in LiteRT (``engine``), and
:class:`TFLiteResult` says which one is the TFLite result, or why there is none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from edgekit.auto.result import AutoResult
    from edgekit.measure.fidelity import OutputFidelity
    from edgekit.measure.latency import Latency
    from edgekit.measure.size import Size
    from edgekit.pipeline import PassResult

REPORT_VERSION = 3


@dataclass
class ModelMeasurement:
    """One model (the original or a variant) and its numbers."""

    name: str
    size: Size
    latency: list[Latency]
    fidelity: list[OutputFidelity] = field(default_factory=list)
    accuracy: float | None = None
    passes: list[PassResult] = field(default_factory=list)
    #: what ran it: ``onnxruntime`` (at the report's thread count) or ``litert`` (``.tflite`` variants)
    engine: str = "onnxruntime"
    #: threads it was timed with (``None``: the report's)
    threads: int | None = None
    #: the file it was written as (``None``: not written)
    file: str | None = None

    def latency_at(self, batch: int) -> Latency | None:
        """The latency measured at ``batch``, if any."""
        return next((lat for lat in self.latency if lat.batch == batch), None)

    @property
    def warnings(self) -> list[str]:
        """Every pass warning."""
        return [w for p in self.passes for w in p.warnings]

    @property
    def headline_fidelity(self) -> OutputFidelity | None:
        """The first output's fidelity (the one users read first)."""
        return self.fidelity[0] if self.fidelity else None

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "name": self.name,
            "size": self.size.to_json(),
            "latency": [lat.to_json() for lat in self.latency],
            "fidelity": [f.to_json() for f in self.fidelity],
            "accuracy": None if self.accuracy is None else round(self.accuracy, 6),
            "passes": [p.to_json() for p in self.passes],
            "engine": self.engine,
            "threads": self.threads,
            "file": self.file,
        }


@dataclass
class TFLiteResult:
    """The TFLite target of a run (``--to tflite``): the result chosen, or the error that stopped it."""

    #: the TFLite variant written as ``model.tflite`` (``None`` when the conversion failed)
    chosen: str | None = None
    #: the budgeted choice among the TFLite variants, in auto mode
    auto: AutoResult | None = None
    #: the one-line error, when the model could not be converted (the ONNX results are written all the same)
    error: str | None = None
    #: the CLI's exit status for that error (from the error tree: 3 for a model TFLite cannot express)
    exit_code: int | None = None
    #: names, shapes, types and layouts of the chosen model's inputs and outputs (``perm``: TFLite axis j holds
    #: ONNX axis ``perm[j]``)
    layouts: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "chosen": self.chosen,
            "auto": None if self.auto is None else self.auto.to_json(),
            "error": self.error,
            "exit_code": self.exit_code,
            "layouts": self.layouts,
        }


@dataclass
class Report:
    """Everything one ``edgekit compress`` run found."""

    edgekit_version: str
    source: str
    cpu: str
    threads: int
    data: dict[str, Any]
    preparation: list[PassResult]
    original: ModelMeasurement
    variants: list[ModelMeasurement]
    chosen: str
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: the budgeted search among the ONNX variants, in auto mode
    auto: AutoResult | None = None
    #: how a model that was not ONNX was imported: kind and notes
    imported: dict[str, Any] | None = None
    #: what was made (``--to``): ``onnx``, ``tflite``; the first one's result is ``chosen`` and is bundled
    targets: tuple[str, ...] = ("onnx",)
    #: the TFLite target's result (``None`` without ``--to tflite``)
    tflite: TFLiteResult | None = None
    #: the board's profile (``--target``) and ``threads_used``, the threads latency was measured with here
    target: dict[str, Any] | None = None
    #: the bundle asked for: ``written``, its ``file`` (``None`` when withheld), ``missed_budget`` (the result
    #: missed its budget) and ``withheld`` (why none was written); ``None``: no bundle was asked for
    bundle: dict[str, Any] | None = None

    @property
    def chosen_variant(self) -> ModelMeasurement:
        """The variant written as the result."""
        return next(v for v in self.variants if v.name == self.chosen)

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "report_version": REPORT_VERSION,
            "edgekit_version": self.edgekit_version,
            "source": self.source,
            "cpu": self.cpu,
            "threads": self.threads,
            "data": self.data,
            "preparation": [p.to_json() for p in self.preparation],
            "original": self.original.to_json(),
            "variants": [v.to_json() for v in self.variants],
            "chosen": self.chosen,
            "warnings": self.warnings,
            "files": self.files,
            "auto": None if self.auto is None else self.auto.to_json(),
            "imported": self.imported,
            "targets": list(self.targets),
            "tflite": None if self.tflite is None else self.tflite.to_json(),
            "target": self.target,
            "bundle": self.bundle,
        }

    def write(self, path: Path) -> None:
        """Write ``report.json``."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
