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


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A Mosquitto of the test's own, started on a free loopback port (tests may kill and restart it)."""
    from tests.brokers import Mosquitto  # noqa: PLC0415

    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()
