"""What every importer shares: the kinds of source, the options an importer takes, the model it returns.

A module of its own so that the importers need nothing from the package that picks between them
(:func:`edgekit.importers.detect`, :func:`edgekit.importers.import_model`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from edgekit.errors import ModelError

if TYPE_CHECKING:
    import onnx

Kind = Literal["onnx", "sklearn", "mlflow", "torch", "tflite"]

SKLEARN_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".skops"})
MLMODEL_FILE = "MLmodel"
#: the ONNX opset importers target by default: ONNX Runtime 1.16 and newer run it, and so do the quantizers
#: (PyTorch's exporter writes 18 at the lowest, and keeps 18 unless an opset is asked for)
DEFAULT_OPSET = 17
#: ``s3://…``, ``https://…``, MLflow's ``runs:/…`` and ``models:/…``: edgekit reads local files only
#: (two letters at least before the colon, so ``C:/`` stays a path)
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


@dataclass(frozen=True)
class ImportOptions:
    """What an importer may need beyond the source itself."""

    #: example input shapes, ``(name, dims)``; PyTorch needs them, sklearn may use one to set the feature count
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: the default ONNX opset of the exported graph (``None``: the importer's own default)
    opset: int | None = None


@dataclass(frozen=True)
class Imported:
    """A model in the form edgekit works on, with what the source said about it."""

    kind: Kind
    source: str
    #: the ONNX model (``None`` for a ``.tflite`` model, which travels as is)
    model: onnx.ModelProto | None = None
    #: the ``.tflite`` file's bytes (``kind == "tflite"`` only)
    tflite: bytes | None = None
    #: class labels in output order, where the source knows them (a classifier's ``classes_``)
    labels: tuple[str, ...] | None = None
    #: input feature names, where the source knows them (a DataFrame's columns, an MLflow signature)
    feature_names: tuple[str, ...] | None = None
    #: one line each: what the importer did or assumed that the user should know
    notes: tuple[str, ...] = field(default_factory=tuple)

    def require_onnx(self) -> onnx.ModelProto:
        """The ONNX model, or a :class:`ModelError` for a model that is not ONNX."""
        if self.model is None:
            raise ModelError(
                f"'{self.source}' is a {self.kind} model, not ONNX: it is packed as is (edgekit bundle pack), "
                "not converted"
            )
        return self.model


Importer = Callable[[str, ImportOptions], Imported]
