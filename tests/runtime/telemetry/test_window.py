"""A telemetry window: latency percentiles, feature statistics and drift against the bundle's reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.bundle.reference import reference
from edgekit.data import Dataset
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import REFERENCE
from edgekit_runtime.telemetry.window import Window, parse_reference, percentile, psi


def table_reference(rng):
    calib = rng.standard_normal((2000, 3)).astype(np.float32)
    return parse_reference(reference(Dataset({"x": calib}, None, "calib.npz")))


def test_the_same_distribution_shows_no_drift_and_a_shifted_one_does():
    rng = np.random.default_rng(0)
    ref = table_reference(rng)
    same, shifted = Window(0.0, ref), Window(0.0, ref)
    for _ in range(20):
        same.record(0.001, inputs={"x": rng.standard_normal((25, 3))})
        moved = rng.standard_normal((25, 3))
        moved[:, 1] += 1.0  # one feature moves by one standard deviation
        shifted.record(0.001, inputs={"x": moved})
    quiet = same.summary(10.0)
    assert not quiet["drift"]
    assert all(f["psi"] < 0.1 for f in quiet["inputs"][0]["features"])
    loud = shifted.summary(10.0)
    assert loud["drift"]
    flags = [f["drift"] for f in loud["inputs"][0]["features"]]
    assert flags == [False, True, False]
    feature = loud["inputs"][0]["features"][1]
    assert feature["count"] == 500
    assert feature["mean"] == pytest.approx(1.0, abs=0.15)
    assert sum(feature["bins"]) == 500


def test_too_few_samples_give_no_psi_yet():
    rng = np.random.default_rng(1)
    window = Window(0.0, table_reference(rng))
    window.record(0.001, inputs={"x": rng.standard_normal((10, 3)) + 5})
    summary = window.summary(1.0)
    assert summary["inputs"][0]["features"][0]["psi"] is None
    assert not summary["drift"]


def test_bins_follow_the_reference_rule_on_a_real_bundle(signed_bundle):
    bundle = open_bundle(signed_bundle)
    doc = json.loads(bundle.read(REFERENCE))
    window = Window(0.0, parse_reference(doc))
    rows = np.zeros((4, 64), np.float32)
    window.record(0.002, inputs={"input": rows}, first_output=np.array([0, 0, 3, 0]))
    summary = window.summary(10.0)
    first = summary["inputs"][0]["features"][0]
    edges = doc["inputs"][0]["features"][0]["edges"]
    expected_bin = int(np.searchsorted(edges, 0.0, side="right"))
    assert first["bins"][expected_bin] == 4
    assert summary["outputs"] == {"classes": {"0": 3, "3": 1}}
    assert summary["batch_sizes"] == {"4": 1}


def test_latency_percentiles_and_errors():
    window = Window(0.0, {})
    for ms in [0.3] * 90 + [3.0] * 9 + [40.0]:
        window.record(ms / 1000)
    window.record(0.0001, error="invalid_input")
    summary = window.summary(10.0)
    assert summary["requests"] == 101
    assert summary["errors"] == {"invalid_input": 1}
    assert summary["latency_ms"]["p50"] == 0.5
    assert summary["latency_ms"]["p99"] == 5.0
    assert sum(summary["latency_ms"]["counts"]) == 101
    assert percentile(np.zeros(3), 0.5) is None


def test_psi_is_zero_for_equal_shares_and_finite_for_empty_bins():
    shares = np.array([0.25, 0.25, 0.5])
    assert psi(shares, shares) == 0.0
    assert 0 < psi(np.array([0.0, 0.5, 0.5]), shares) < 10


def test_requests_with_other_free_dimensions_are_counted_too():
    rng = np.random.default_rng(2)
    images = rng.standard_normal((50, 3, 4, 6)).astype(np.float32)
    ref = parse_reference(reference(Dataset({"x": images}, None, "calib.npz")))
    window = Window(0.0, ref)
    window.record(0.001, inputs={"x": rng.standard_normal((2, 3, 4, 6))})
    window.record(0.001, inputs={"x": rng.standard_normal((1, 3, 4, 9))})  # another width
    features = window.summary(1.0)["inputs"][0]["features"]
    assert [f["count"] for f in features] == [2 * 24 + 36] * 3  # per channel: every pixel of every request
