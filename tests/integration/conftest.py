"""Fixtures the telemetry integration tests share: a bundle with reference statistics, test rows, a collector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from tests.integration.rig import Collector

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The digits MLP with reference statistics: windows carry 64 features' numbers, several pages each."""
    out = tmp_path_factory.mktemp("bundle")
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    return pack_source(str(DIGITS / "mlp.onnx"), out, BundleOptions(name="digits-mlp"), data).path


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    with np.load(DIGITS / "mlp_test.npz") as data:
        return np.asarray(data["input"], dtype=np.float32)


@pytest.fixture
def collector(mosquitto, tmp_path):
    """The collector, subscribed (its session is in the broker, and saved)."""
    running = Collector(mosquitto, tmp_path / "telemetry.db", tmp_path / "collector.log")
    try:
        running.subscribed(mosquitto)
        yield running
    finally:
        running.stop()
