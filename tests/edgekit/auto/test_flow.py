"""Auto mode judges each output by what it is, reports a candidate that breaks, and says why nothing met."""

from __future__ import annotations

import json

import onnx
import pytest

from edgekit import auto
from edgekit.auto.budget import Budget
from edgekit.compress import CompressOptions, compress
from edgekit.measure.latency import LatencyBudget
from tests.edgekit.conftest import AVX2_CPU
from tests.edgekit.judged_graphs import break_dynamic_int8, embedding_model, logits_model

FAST = LatencyBudget(warmup=1, min_runs=3, max_runs=10, seconds=0.05, rounds=1)


def _compress(model, tmp_path, *, modes, **auto_kwargs):
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    options = CompressOptions(modes=modes, auto=auto.AutoOptions(**auto_kwargs), latency_budget=FAST, batch=8)
    out = tmp_path / "out"
    return compress(path, out, options, cpu=AVX2_CPU), json.loads((out / "report.json").read_text())


def test_an_embedding_model_without_labels_is_judged_by_the_worst_samples_cosine(tmp_path):
    report, saved = _compress(embedding_model(), tmp_path, modes=("int8-dynamic",), prefer="size")

    search = report.auto
    assert search is not None
    assert search.metric.name == "cosine"
    assert saved["auto"]["metric"]["judged"] == {"embeddings": "cosine (worst sample)"}
    variant = next(v for v in saved["variants"] if v["name"] == "int8-dynamic")
    (judged,) = variant["fidelity"]
    assert (judged["judged"], judged["metric"]) == ("cosine (worst sample)", "cosine")
    assert judged["value"] == judged["worst_cosine"] <= judged["cosine"]
    assert search.trials[0].meets_budget
    assert report.chosen == "int8-dynamic"


def test_logits_are_judged_by_top1_agreement(tmp_path):
    report, saved = _compress(logits_model(), tmp_path, modes=("int8-dynamic",))

    assert report.auto is not None
    assert report.auto.metric.name == "agreement"
    assert saved["auto"]["metric"]["judged"] == {"logits": "top-1 agreement"}
    variant = next(v for v in saved["variants"] if v["name"] == "int8-dynamic")
    assert variant["fidelity"][0]["judged"] == "top-1 agreement"


def test_a_candidate_that_does_not_load_is_a_failed_row_and_the_run_goes_on(tmp_path, monkeypatch):
    break_dynamic_int8(monkeypatch)

    report, saved = _compress(embedding_model(), tmp_path, modes=("int8-dynamic", "prune"), prefer="size")

    search = report.auto
    assert search is not None
    broken, pruned = search.trials
    assert broken.failed
    assert broken.error is not None
    assert broken.error.startswith("failed to load: ")
    assert "float16" in broken.error
    assert "[ONNXRuntimeError]" not in broken.error  # the engine's reason, not its prefix
    assert "\n" not in broken.error
    assert (broken.metric, broken.meets_budget) == (None, None)  # neither met nor missed
    assert "int8-dynamic" not in search.scores
    assert [v.name for v in report.variants] == ["fp32", "prune"]
    assert pruned.metric is not None
    assert saved["auto"]["trials"][0]["status"] == "failed"
    assert saved["auto"]["trials"][1]["status"] in {"met", "missed"}


def test_when_nothing_meets_the_budget_the_verdict_says_why_for_each_candidate(tmp_path, monkeypatch):
    break_dynamic_int8(monkeypatch)

    report, saved = _compress(
        embedding_model(), tmp_path, modes=("int8-dynamic", "prune"), budget=Budget(0.0, relative=False)
    )

    verdict = report.auto.verdict if report.auto else None
    assert verdict is not None
    assert not verdict.met
    assert report.chosen == "prune"
    failed, reached = verdict.tried
    assert failed.startswith("int8-dynamic: failed to load: ")
    assert reached.startswith("prune: cosine 0.")
    assert reached.endswith(" < 1 (output embeddings)")
    assert saved["auto"]["verdict"]["tried"] == verdict.tried


def test_when_every_candidate_fails_the_fp32_graph_is_written_and_the_verdict_lists_them(tmp_path, monkeypatch):
    break_dynamic_int8(monkeypatch)

    report, _ = _compress(embedding_model(), tmp_path, modes=("int8-dynamic",))

    search = report.auto
    assert search is not None
    assert search.verdict is not None
    assert report.chosen == "fp32"
    assert search.choice == ["no candidate could be loaded and run (the table says why): writing the FP32 graph"]
    (clause,) = search.verdict.tried
    assert clause.startswith("int8-dynamic: failed to load: ")


@pytest.mark.parametrize(
    ("metric", "judged"),
    [("embeddings=relative", "1 - relative error"), ("agreement,embeddings=top1", "top-1 agreement")],
)
def test_metric_output_equals_metric_sets_the_judgement(tmp_path, metric, judged):
    report, saved = _compress(embedding_model(), tmp_path, modes=("int8-dynamic",), metric=metric)

    assert report.auto is not None
    assert report.auto.metric.name == "agreement"
    assert saved["auto"]["metric"]["judged"] == {"embeddings": judged}
    variant = next(v for v in saved["variants"] if v["name"] == "int8-dynamic")
    assert variant["fidelity"][0]["judged"] == judged
