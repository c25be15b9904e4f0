"""Golden data: a deterministic, pickle-free archive, and comparisons by the documented rule."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit_runtime.errors import BundleError
from edgekit_runtime.golden import Golden, compare, self_test


def golden():
    return Golden(
        inputs={"x": np.arange(6, dtype=np.float32).reshape(2, 3)},
        outputs={"y": np.array([[0.25, 0.75], [0.5, 0.5]], np.float32), "label": np.array(["cat", "dog"])},
        atol={"y": 1e-3},
        rtol={"y": 1e-4},
    )


def test_round_trip_is_exact_and_deterministic():
    data = golden().to_bytes()
    assert data == golden().to_bytes()
    back = Golden.from_bytes(data)
    np.testing.assert_array_equal(back.inputs["x"], golden().inputs["x"])
    assert back.outputs["label"].tolist() == ["cat", "dog"]
    assert back.atol == {"y": 1e-3}


def test_self_test_passes_within_tolerance_and_fails_outside_it():
    g = golden()
    near = {"y": g.outputs["y"] + 5e-4, "label": np.array(["cat", "dog"], dtype=object)}
    assert self_test(g, lambda _: near).passed
    far = {"y": g.outputs["y"] + 5e-2, "label": g.outputs["label"]}
    result = self_test(g, lambda _: far)
    assert not result.passed
    assert result.failure().startswith("y: max abs error 0.05")


def test_labels_must_match_exactly():
    check = compare("label", np.array(["cat", "dog"]), np.array(["cat", "cow"]), 0.0, 0.0)
    assert not check.passed
    assert check.detail == "1 of 2 values differ"


def test_integer_outputs_must_match_exactly():
    assert compare("k", np.array([1, 2]), np.array([1, 2], np.int32), 0.5, 0.0).passed
    assert not compare("k", np.array([1, 2]), np.array([1, 3]), 0.5, 0.0).passed


def test_a_wrong_shape_or_a_missing_output_fails_with_a_reason():
    assert "shape [3], expected [2]" in compare("y", np.zeros(2), np.zeros(3), 1.0, 0.0).detail
    assert compare("y", np.zeros(2), None, 1.0, 0.0).detail == "the model did not return it"


def test_nan_where_none_was_expected_fails():
    assert not compare("y", np.zeros(2), np.array([0.0, np.nan]), 1.0, 0.0).passed


@pytest.mark.parametrize(
    ("data", "message"), [(b"junk", "cannot be read"), (Golden({}, {}, {}, {}).to_bytes(), "no inputs")]
)
def test_a_bad_golden_file_is_a_bundle_error(data, message):
    with pytest.raises(BundleError, match=message):
        Golden.from_bytes(data)
