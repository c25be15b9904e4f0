"""The PP-OCR orientation classifier, from the cache ``tools/fetch_models.py`` fills (tests download nothing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parents[3] / "tools"


def _tools_module(name: str):
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return __import__(name)


@pytest.fixture(scope="session")
def ppocr_cls() -> Path:
    """The classifier's path; a missing one fails the test saying how to fetch it (tools/dev.sh test does)."""
    fetch_models = _tools_module("fetch_models")
    path = fetch_models.default_cache() / fetch_models.MODELS["cls"].filename
    if not path.is_file():
        pytest.fail(f"PP-OCR classifier not in {path.parent}: run python tools/fetch_models.py cls")
    return path


@pytest.fixture(scope="session")
def ppocr_cls_inputs():
    """200 rendered text lines for the classifier, half of them upside down, with labels."""
    ppocr_data = _tools_module("ppocr_data")
    return ppocr_data.cls_data(np.random.default_rng(0), 200)


@pytest.fixture(scope="session")
def ppocr_cls_calibration():
    """64 other rendered lines, in batches of 16, to calibrate the INT8 variant."""
    ppocr_data = _tools_module("ppocr_data")
    lines = ppocr_data.cls_data(np.random.default_rng(1), 64)["inputs"]
    return [{"x": lines[i : i + 16]} for i in range(0, 64, 16)]


@pytest.fixture(scope="session")
def ppocr_cls_many_inputs():
    """1,000 rendered lines: enough that one near-tie line more or less does not decide a 99 % bound."""
    ppocr_data = _tools_module("ppocr_data")
    return ppocr_data.cls_data(np.random.default_rng(0), 1000)
