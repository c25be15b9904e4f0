"""The real models ``tools/fetch_models.py`` caches out of PyPI wheels: tests read them, never download them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def tools_module(name: str) -> ModuleType:
    """A script of ``tools/`` imported as a module."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return __import__(name)


def cached(name: str) -> Path:
    """The cached file of model ``name`` (the exported ONNX for MTCNN's nets); a missing one fails the test.

    ``bash tools/dev.sh test`` fills the cache before pytest runs.
    """
    fetch_models = tools_module("fetch_models")
    model = fetch_models.MODELS[name]
    path = fetch_models.default_cache() / (model.exported or model.filename)
    if not path.is_file():
        pytest.fail(f"{model.description} not in {path.parent}: run python tools/fetch_models.py {name}")
    return path
