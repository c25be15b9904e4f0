"""Fidelity of a compressed model's outputs to the original's, and accuracy against labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import DataError
from edgekit.measure.fidelity import accuracy, compare, compare_all, output_kind, predictions


@pytest.mark.parametrize(
    ("array", "kind"),
    [
        (np.zeros((4, 10), np.float32), "classes"),
        (np.zeros((4, 1), np.float32), "values"),  # one score per sample: a regression
        (np.zeros(4, np.float32), "values"),
        (np.zeros((4, 3, 8, 8), np.float32), "tensor"),
        (np.zeros(4, np.int64), "labels"),
        (np.zeros((4, 1), np.int64), "labels"),
        (np.zeros(4, np.bool_), "labels"),
        (np.zeros((4, 2, 2), np.int32), "tensor"),
    ],
)
def test_output_kind(array, kind):
    assert output_kind(array) == kind


def test_top1_agreement_counts_matching_argmax():
    reference = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 2.0]], np.float32)
    candidate = np.array([[2.0, 1.0], [3.0, 0.0], [1.0, 5.0], [1.0, 2.0]], np.float32)

    result = compare("scores", reference, candidate)

    assert result.kind == "classes"
    assert result.headline == "top1_agreement"
    assert result.value == 0.5
    assert result.max_abs_error == 4.0
    assert result.mean_abs_error == pytest.approx((3 + 3 + 4 + 4) / 8)
    assert result.cosine is not None
    assert 0 < result.cosine < 1


def test_identical_outputs_have_cosine_one_and_no_error():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)

    result = compare("features", features, features.copy())

    assert result.kind == "tensor"
    assert result.headline == "cosine"
    assert result.value == pytest.approx(1.0)
    assert result.max_abs_error == 0.0
    assert result.mean_abs_error == 0.0


def test_cosine_of_opposite_outputs_is_minus_one():
    features = np.array([[[1.0, 2.0, 3.0]], [[-1.0, 0.5, 2.0]]], np.float32)
    assert compare("f", features, -features).value == pytest.approx(-1.0)


def test_cosine_is_the_mean_over_samples():
    reference = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    candidate = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)  # same, then orthogonal
    assert compare("f", reference, candidate).cosine == pytest.approx(0.5)


def test_two_all_zero_samples_agree():
    zeros = np.zeros((2, 3, 2), np.float32)
    assert compare("f", zeros, zeros.copy()).value == 1.0


def test_zero_against_non_zero_is_no_agreement():
    reference = np.zeros((2, 3, 2), np.float32)
    candidate = np.ones((2, 3, 2), np.float32)
    assert compare("f", reference, candidate).value < 0.5


def test_regression_outputs_far_off_score_low():
    reference = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
    assert compare("price", reference, reference * 10).value < 0.9


def test_label_agreement():
    reference = np.array([0, 1, 2, 3, 4], np.int64)
    candidate = np.array([0, 1, 2, 0, 0], np.int64)

    result = compare("label", reference, candidate)

    assert (result.kind, result.headline, result.value) == ("labels", "label_agreement", 0.6)
    assert result.max_abs_error is None
    assert result.cosine is None


def test_compare_all_pairs_outputs_by_position_and_serialises():
    labels = np.array([1, 2, 3], np.int64)
    scores = np.eye(3, dtype=np.float32)
    results = compare_all(["label", "scores"], [labels, scores], [labels, scores[::-1]])

    assert [(r.name, r.kind) for r in results] == [("label", "labels"), ("scores", "classes")]
    assert results[0].value == 1.0
    assert results[1].value == pytest.approx(1 / 3)
    data = json.loads(json.dumps([r.to_json() for r in results]))
    assert data[1]["metric"] == "top1_agreement"
    assert data[1]["value"] == round(1 / 3, 6)


def test_compare_all_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="zip"):
        compare_all(["a", "b"], [np.zeros(2)], [np.zeros(2)])


def test_accuracy_from_class_scores():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    labels = np.array([0, 1, 1, 1])
    np.testing.assert_array_equal(predictions([scores]), [0, 1, 0, 1])
    assert accuracy([scores], labels) == 0.75


def test_accuracy_prefers_an_integer_label_output():
    label_output = np.array([1, 1, 0, 0], np.int64)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    assert accuracy([scores, label_output], np.array([1, 1, 0, 1])) == 0.75


def test_one_hot_labels_are_a_data_error_naming_both_shapes():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    with pytest.raises(DataError) as info:
        accuracy([scores], np.eye(2)[[0, 1, 1]])
    assert str(info.value) == (
        "the 'label' array has shape [3, 2] but the model predicts one class per sample, shape [3]: "
        "store class indices (for one-hot labels: label=y.argmax(axis=1))"
    )


def test_labels_with_a_trailing_axis_of_one_are_fine():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    assert accuracy([scores], np.array([[0], [0]])) == 0.5


def test_accuracy_of_a_model_without_class_outputs_is_none():
    assert accuracy([np.zeros((4, 1), np.float32)], np.zeros(4)) is None
    assert predictions([np.zeros((4, 8, 8), np.float32)]) is None


def test_a_sequence_of_class_probabilities_is_compared_per_position():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    assert output_kind(probs) == "sequence"
    assert output_kind(logits.astype(np.float32)) == "tensor"  # not probabilities: cosine
    other = probs.copy()
    other[0, 0] = np.roll(other[0, 0], 1)  # one position of twelve changes its top class
    f = compare("out", probs, other)
    assert (f.kind, f.headline) == ("sequence", "top1_agreement")
    assert f.value == pytest.approx(11 / 12)
