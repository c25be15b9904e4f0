"""ONNX files are already what edgekit works on: read them, with the usual checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.importers.base import Imported
from edgekit.model_io import load_model

if TYPE_CHECKING:
    from edgekit.importers.base import ImportOptions


def import_onnx(source: str, options: ImportOptions) -> Imported:  # noqa: ARG001  (the importer signature)
    """Load an ONNX model file (external data included)."""
    return Imported("onnx", source, model=load_model(Path(source)).model)
