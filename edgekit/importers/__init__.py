"""Importers: the model a user already has, made into ONNX (or, for ``.tflite``, taken as is).

One registry, looked up by what the source is::

    model.onnx                    onnx     read as is
    model.pkl / .joblib / .skops  sklearn  skl2onnx (edgekit[sklearn]); loading a pickle runs its code
    folder with an MLmodel file   mlflow   by flavor: sklearn, onnx or pytorch (no mlflow import)
    module.py:factory / .pt2      torch    torch.onnx.export (edgekit[torch])
    model.tflite                  tflite   packed as is, never converted

Every importer is a function ``(source, options) -> Imported``; :func:`import_model` picks one by
:func:`detect`. Importers raise :class:`edgekit.errors.ModelError` for a source they cannot read and
:class:`edgekit.errors.MissingExtraError` when the package they need is missing. What they share (the options,
:class:`Imported`, the kinds) is in :mod:`edgekit.importers.base`, and importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import ModelError
from edgekit.importers.base import (
    DEFAULT_OPSET,
    MLMODEL_FILE,
    SKLEARN_SUFFIXES,
    URL_PATTERN,
    Imported,
    ImportOptions,
    Kind,
)

if TYPE_CHECKING:
    from edgekit.importers.base import Importer

__all__ = [
    "DEFAULT_OPSET",
    "MLMODEL_FILE",
    "SKLEARN_SUFFIXES",
    "URL_PATTERN",
    "ImportOptions",
    "Imported",
    "Kind",
    "detect",
    "import_model",
]


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
