"""Metrics: the automatic choice, the built-ins, and user functions."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.auto.metrics import BUILTIN, check_metric, choose_metric, load_user_metric, parse_metric
from edgekit.errors import ConfigError, DataError
from edgekit.measure.fidelity import OutputHints

SCORES = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], np.float32)
LABELS = np.array([1, 0, 0, 0])


def test_labels_and_class_scores_choose_accuracy():
    metric = choose_metric(None, has_labels=True, reference=[SCORES])
    assert metric.name == "accuracy"
    assert metric.uses_labels
    assert metric([SCORES], LABELS) == pytest.approx(0.75)


def test_labels_and_one_value_per_sample_choose_mae():
    values = np.array([[1.0], [2.0], [4.0]], np.float32)
    metric = choose_metric(None, has_labels=True, reference=[values])
    assert metric.name == "mae"
    assert not metric.higher_is_better
    assert metric([values], np.array([1.0, 2.0, 3.0])) == pytest.approx(1 / 3)
    assert BUILTIN["rmse"]([values], np.array([1.0, 2.0, 3.0])) == pytest.approx(np.sqrt(1 / 3))


def test_without_labels_the_metric_is_agreement_with_fp32():
    metric = choose_metric(None, has_labels=False, reference=[SCORES])
    assert metric.name == "agreement"
    flipped = SCORES[:, ::-1].copy()
    assert metric([SCORES], [SCORES]) == 1.0
    assert metric([flipped], [SCORES]) == 0.0


def test_agreement_takes_the_worst_output():
    embedding = np.ones((4, 2, 3), np.float32)  # a feature map: compared by cosine
    metric = BUILTIN["agreement"]
    assert metric([SCORES, -embedding], [SCORES, embedding]) == -1.0  # the classes agree; the map is opposite


def test_sequence_of_class_probabilities_is_compared_per_position():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 4))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    changed = probs.copy()
    changed[0, 0] = changed[0, 0, ::-1]  # one position of ten gets another top class (unless it had a tie)
    assert BUILTIN["top1"]([changed], [probs]) == pytest.approx(0.9)


def test_a_label_metric_without_labels_is_refused():
    with pytest.raises(ConfigError, match="needs labels"):
        choose_metric("accuracy", has_labels=False, reference=[SCORES])


def test_an_unknown_metric_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="agreement"):
        choose_metric("f1", has_labels=True, reference=[SCORES])


def test_accuracy_on_a_model_without_class_outputs_is_a_data_error():
    with pytest.raises(DataError, match="mae"):
        BUILTIN["accuracy"]([np.ones((4, 2, 2), np.float32)], LABELS)


def test_mae_with_a_label_count_that_fits_no_output_is_a_data_error():
    with pytest.raises(DataError, match="one value per label"):
        BUILTIN["mae"]([np.ones((4, 1), np.float32)], np.ones(5))


def _write_metric(tmp_path, body):
    path = tmp_path / "my_metrics.py"
    path.write_text(body)
    return path


def test_a_user_function_from_a_file(tmp_path):
    path = _write_metric(
        tmp_path, "def neg_error(outputs, target):\n    return -float(abs(outputs[0] - target[0]).max())\n"
    )
    metric = choose_metric(f"{path}:neg_error", has_labels=False, reference=[SCORES])
    assert metric.higher_is_better
    assert not metric.uses_labels
    assert metric([SCORES + 0.5], [SCORES]) == pytest.approx(-0.5)


def test_a_user_module_on_the_path_can_say_lower_is_better(tmp_path, monkeypatch):
    _write_metric(
        tmp_path,
        "def err(outputs, labels):\n    return float((outputs[0].argmax(1) != labels).mean())\n"
        "err.higher_is_better = False\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    metric = choose_metric("my_metrics:err", has_labels=True, reference=[SCORES])
    assert not metric.higher_is_better
    assert metric.uses_labels
    assert metric([SCORES], LABELS) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_here:f", "cannot import"),
        ("{tmp}/missing.py:f", "cannot import"),
        ("{tmp}/my_metrics.py:absent", "has no function 'absent'"),
        (":f", "module:function"),
        ("{tmp}/my_metrics.py:", "module:function"),
    ],
)
def test_user_metric_errors_name_the_fix(tmp_path, spec, words):
    _write_metric(tmp_path, "x = 1\n")
    with pytest.raises(ConfigError, match=words):
        load_user_metric(spec.format(tmp=tmp_path))


def test_a_failing_user_function_is_one_config_error(tmp_path):
    path = _write_metric(tmp_path, "def bad(outputs, target):\n    raise KeyError('boom')\n")
    metric = load_user_metric(f"{path}:bad")
    with pytest.raises(ConfigError, match=r"metric .* failed \(KeyError"):
        metric([SCORES], None)


def test_a_user_function_returning_nan_is_refused(tmp_path):
    path = _write_metric(tmp_path, "def nan(outputs, target):\n    return float('nan')\n")
    with pytest.raises(ConfigError, match="NaN"):
        load_user_metric(f"{path}:nan")([SCORES], None)


def _unit_rows(samples: int = 8, width: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((samples, width))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_without_labels_an_embedding_model_is_judged_by_the_worst_samples_cosine():
    reference = _unit_rows()
    metric = choose_metric(None, has_labels=False, reference=[reference], names=["embeddings"])
    assert metric.name == "cosine"
    assert metric.to_json()["judged"] == {"embeddings": "cosine (worst sample)"}
    noisy = reference + 0.01 * _unit_rows(seed=1)  # every argmax may move; the direction barely does
    assert metric([noisy], [reference]) > 0.99
    one_off = reference.copy()
    one_off[2] = -one_off[2]
    assert metric([one_off], [reference]) == pytest.approx(-1.0)  # the worst sample, not the mean (0.75)


def test_the_cosine_builtin_is_the_worst_sample_too():
    reference = _unit_rows()
    one_off = reference.copy()
    one_off[0] = -one_off[0]
    assert BUILTIN["cosine"]([one_off], [reference]) == pytest.approx(-1.0)


def test_logits_by_name_are_judged_by_top1_and_the_metric_stays_agreement():
    logits = _unit_rows()
    metric = choose_metric(None, has_labels=False, reference=[logits], names=["logits"])
    assert metric.name == "agreement"
    assert metric.to_json()["judged"] == {"logits": "top-1 agreement"}


def test_declared_labels_make_an_unnamed_matrix_class_scores():
    scores = _unit_rows(width=5)
    metric = choose_metric(None, has_labels=False, reference=[scores], names=["out"], hints=OutputHints(classes=5))
    assert metric.kinds == ["classes"]


def test_output_equals_metric_judges_that_output():
    logits, embeddings = _unit_rows(width=4), _unit_rows(seed=3)
    metric = choose_metric(
        "logits=cosine,embeddings=relative",
        has_labels=True,  # per-output judgements score fidelity, labels or not
        reference=[logits, embeddings],
        names=["logits", "embeddings"],
    )
    assert (metric.name, metric.uses_labels) == ("agreement", False)
    assert metric.kinds == ["tensor", "values"]
    assert metric([logits, embeddings * 0.5], [logits, embeddings]) == pytest.approx(0.5)  # 1 - relative error
    assert parse_metric("agreement, embeddings=cosine") == ("agreement", {"embeddings": "cosine"})


def test_an_unknown_output_is_refused_naming_the_outputs_and_metrics():
    with pytest.raises(ConfigError) as info:
        choose_metric("embedding=cosine", has_labels=False, reference=[_unit_rows()], names=["embeddings"])
    assert str(info.value) == (
        "--metric embedding=cosine: the model has no output 'embedding': name one of embeddings, "
        "judged by top1, cosine, relative, exact"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("embeddings=cosinus", "--metric 'embeddings=cosinus' is not OUTPUT=METRIC: METRIC is one of top1, cosine"),
        ("=cosine", "--metric '=cosine' is not OUTPUT=METRIC"),
        ("accuracy,embeddings=cosine", "OUTPUT=METRIC judges outputs against the FP32 model (agreement), not accuracy"),
        ("top1,cosine", "names more than one metric"),
    ],
)
def test_bad_per_output_metrics_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError) as info:
        check_metric(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
