"""Importers: the model a user already has, made into ONNX (or, for ``.tflite``, taken as is).

One registry, looked up by what the source is::

    model.onnx                    onnx     read as is
    model.pkl / .joblib / .skops  sklearn  skl2onnx (edgekit[sklearn]); loading a pickle runs its code
    folder with an MLmodel file   mlflow   by flavor: sklearn, onnx or pytorch (no mlflow import)
    module.py:factory / .pt2      torch    torch.onnx.export (edgekit[torch])
    model.tflite                  tflite   packed as is, never converted

Every importer is a function ``(source, options) -> Imported``; :func:`import_model` picks one by
:func:`detect`. Importers raise :class:`edgekit.errors.ModelError` for a source they cannot read and
:class:`edgekit.errors.MissingExtraError` when the package they need is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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


def detect(source: str) -> Kind:
    """What kind of model ``source`` names, from its form alone (nothing is loaded)."""
    if URL_PATTERN.match(source):
        raise ModelError(
            f"'{source}' is a URL: edgekit reads local files only (loading a model can run its code); "
            "download it first, e.g. mlflow artifacts download -u URI -d DIR"
        )
    path = Path(source)
    if path.is_dir():
        if (path / MLMODEL_FILE).is_file():
            return "mlflow"
        raise ModelError(
            f"'{source}' is a folder without an {MLMODEL_FILE} file: pass a model file, or an MLflow model folder"
        )
    if path.name == MLMODEL_FILE:
        return "mlflow"
    suffix = path.suffix.lower()
    if suffix in SKLEARN_SUFFIXES:
        return "sklearn"
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".pt2" or _is_factory(source):
        return "torch"
    if suffix in {".pt", ".pth"}:
        raise ModelError(
            f"'{source}' is a PyTorch state or pickle file, which holds no architecture: pass "
            "module.py:factory (a function returning the nn.Module) or an ExportedProgram .pt2"
        )
    return "onnx"


def _is_factory(source: str) -> bool:
    module, sep, name = source.rpartition(":")
    return bool(sep) and module.endswith(".py") and name.isidentifier()


def import_model(source: str, options: ImportOptions | None = None) -> Imported:
    """Import ``source`` with the importer for its kind."""
    options = options or ImportOptions()
    return _importer(detect(source))(source, options)


def _importer(kind: Kind) -> Importer:
    # lazy: each importer pulls in its own heavy dependency (skl2onnx, torch) only when used
    if kind == "sklearn":
        from edgekit.importers.sklearn import import_sklearn

        return import_sklearn
    if kind == "mlflow":
        from edgekit.importers.mlflow import import_mlflow

        return import_mlflow
    if kind == "torch":
        from edgekit.importers.torch import import_torch

        return import_torch
    if kind == "tflite":
        from edgekit.importers.tflite import import_tflite

        return import_tflite
    from edgekit.importers.onnx import import_onnx

    return import_onnx
