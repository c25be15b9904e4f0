"""Fidelity of a compressed model's outputs to the original's, and accuracy against labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import ConfigError, DataError
from edgekit.measure.fidelity import (
    OutputHints,
    accuracy,
    compare,
    compare_all,
    judge,
    output_kind,
    predictions,
)


@pytest.mark.parametrize(
    ("array", "kind"),
    [
        (np.zeros((4, 10), np.float32), "tensor"),  # unnamed, not softmax rows: judged by cosine
        (np.full((4, 10), 0.1, np.float32), "classes"),  # softmax rows
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


def _embeddings(samples: int = 8, width: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, width))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_embeddings_are_judged_by_the_worst_samples_cosine_not_by_argmax():
    reference = _embeddings()
    candidate = reference.copy()
    candidate[3] = _embeddings(1, seed=9)[0]  # one sample points elsewhere

    result = compare("embeddings", reference, candidate)

    assert (result.kind, result.headline, result.judged) == ("tensor", "cosine", "cosine (worst sample)")
    assert result.worst_cosine is not None
    assert result.cosine is not None
    assert result.value == result.worst_cosine < 0.5 < result.cosine  # the mean hides the sample, the worst does not
    assert result.relative_error is not None
    assert result.relative_error > 0
    data = result.to_json()
    assert data["judged"] == "cosine (worst sample)"
    assert data["worst_cosine"] == round(result.worst_cosine, 6)


@pytest.mark.parametrize("name", ["logits", "output_probability", "probs", "scores", "output_label", "/fc/Softmax_out"])
def test_a_name_that_says_class_scores_makes_them_classes(name):
    assert output_kind(_embeddings(), name) == "classes"
    assert compare(name, _embeddings(), _embeddings()).judged == "top-1 agreement"


@pytest.mark.parametrize("name", ["embeddings", "last_hidden_state", "y", "output_0"])
def test_other_names_keep_a_float_matrix_a_tensor(name):
    assert output_kind(_embeddings(), name) == "tensor"


def test_softmax_rows_are_classes_whatever_the_name():
    logits = np.random.default_rng(0).normal(size=(6, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert output_kind(probs.astype(np.float32), "out") == "classes"


def test_declared_labels_make_a_matrix_of_as_many_columns_classes():
    assert output_kind(_embeddings(width=5), "out", classes=5) == "classes"
    assert output_kind(_embeddings(width=16), "out", classes=5) == "tensor"


def test_judge_takes_the_asked_judgement_over_the_guess():
    names = ["logits", "embeddings", "frames"]
    reference = [_embeddings(), _embeddings(), np.zeros((8, 4, 3), np.float32)]
    hints = OutputHints(judged={"logits": "cosine", "embeddings": "relative", "frames": "top1"})
    assert judge(names, reference, hints) == ["tensor", "values", "sequence"]
    assert judge(names, reference) == ["classes", "tensor", "tensor"]


def test_top1_on_one_value_per_sample_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^--metric price=top1: output 'price' has shape \[8, 1\]"):
        judge(["price"], [np.zeros((8, 1), np.float32)], OutputHints(judged={"price": "top1"}))


def test_accuracy_with_labels_still_takes_argmax_of_an_unnamed_matrix():
    scores = np.array([[2.0, -1.0], [0.0, 3.0]], np.float32)  # logits, not softmax, no telling name
    assert accuracy([scores], np.array([0, 1])) == 1.0
