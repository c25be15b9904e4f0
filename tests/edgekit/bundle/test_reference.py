"""Reference statistics: which axis holds the features, and bins that describe the data."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.bundle.reference import feature_axis, feature_stats, reference
from edgekit.data import Dataset


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((100, 4), 1), ((8, 3, 224, 224), 1), ((8, 224, 224, 3), 3), ((8, 20, 6), 2), ((8,), None), ((2, 5000), None)],
)
def test_feature_axis(shape, axis):
    assert feature_axis(shape) == axis


def test_quantile_bins_hold_a_tenth_each_for_continuous_data():
    values = np.random.default_rng(0).standard_normal(10_000)
    stats = feature_stats(values)
    assert len(stats["edges"]) == 9
    assert sum(stats["fractions"]) == pytest.approx(1.0)
    assert stats["fractions"] == pytest.approx([0.1] * 10, abs=1e-3)
    assert stats["mean"] == pytest.approx(values.mean(), abs=1e-6)


def test_repeated_values_merge_edges_and_the_counting_rule_is_searchsorted_right():
    values = np.array([0.0] * 50 + [1.0] * 50)
    stats = feature_stats(values)
    assert stats["edges"] == [0.0, 1.0]
    assert stats["fractions"] == [0.0, 0.5, 0.5]


def test_reference_from_a_table_names_its_features():
    data = Dataset({"input": np.arange(30, dtype=np.float32).reshape(10, 3)}, None, "/data/calib.npz")
    doc = reference(data, feature_names=("a", "b", "c"))
    assert doc["samples"] == 10
    assert doc["source"] == "calib.npz"
    features = doc["inputs"][0]["features"]
    assert [f["name"] for f in features] == ["a", "b", "c"]
    assert features[1]["min"] == 1.0


def test_no_real_data_means_no_reference_and_a_note():
    synthetic = Dataset({"input": np.zeros((4, 3), np.float32)}, None, "synthetic", synthetic=True)
    doc = reference(synthetic)
    assert doc["inputs"] == []
    assert "--calib" in doc["note"]
