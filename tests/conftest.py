"""Fixtures every test folder shares: where the bundled examples are."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"


@pytest.fixture(scope="session")
def digits() -> Path:
    """The bundled digits models and data (examples/digits)."""
    return DIGITS
