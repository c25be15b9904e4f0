"""Bundles for the runtime's tests, written by the host toolkit (the tests may import both sides)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    """A signing key pair: (private .key, public .pub)."""
    return generate_keypair(tmp_path_factory.mktemp("keys") / "signer")


@pytest.fixture(scope="session")
def signed_bundle(tmp_path_factory, keys) -> Path:
    """The digits MLP, packed with real data and signed."""
    out = tmp_path_factory.mktemp("bundle")
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    return pack_source(str(DIGITS / "mlp.onnx"), out, BundleOptions(name="digits-mlp", signing_key=keys[0]), data).path
