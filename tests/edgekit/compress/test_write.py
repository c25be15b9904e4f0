"""What a compress run writes: a result that missed its budget gets its model and report, and no bundle."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgekit import auto, passes
from edgekit.bundle.pack import BundleOptions
from edgekit.compress import CompressOptions, compress
from edgekit.errors import ConfigError
from edgekit.measure.latency import LatencyBudget
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import REPORT

FAST = LatencyBudget(warmup=1, min_runs=3, max_runs=10, seconds=0.05, rounds=1)


def missing_options(digits, **changes) -> CompressOptions:
    """Prune 95% of the digits CNN's weights under a 0.1-point accuracy budget: it falls to about 10%."""
    options = CompressOptions(
        modes=("prune",),
        auto=auto.AutoOptions(budget=auto.parse_budget("0.1pt")),
        prune=passes.PruneConfig(sparsity=0.95),
        eval=digits / "cnn_test.npz",
        max_eval_samples=64,
        latency_budget=FAST,
        bundle=BundleOptions(),
    )
    return dataclasses.replace(options, **changes)


def test_a_missed_budget_writes_the_model_and_report_but_no_bundle(digits, tmp_path):
    out = tmp_path / "out"
    report = compress(digits / "cnn.onnx", out, missing_options(digits))

    assert report.auto is not None
    assert report.auto.verdict is not None
    assert not report.auto.verdict.met
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]
    written = json.loads((out / "report.json").read_text())
    assert written["files"] == ["model.onnx", "report.json"]
    assert written["bundle"] == {
        "written": False,
        "file": None,
        "missed_budget": True,
        "withheld": "the result, prune, missed its budget",
    }


def test_bundle_anyway_bundles_a_result_that_missed_and_says_so(digits, tmp_path):
    out = tmp_path / "out"
    compress(digits / "cnn.onnx", out, missing_options(digits, bundle_anyway=True))

    assert sorted(p.name for p in out.iterdir()) == ["cnn-1.0.0.edgebundle", "model.onnx", "report.json"]
    written = json.loads((out / "report.json").read_text())
    assert written["bundle"] == {
        "written": True,
        "file": "cnn-1.0.0.edgebundle",
        "missed_budget": True,
        "withheld": None,
    }
    assert json.loads(open_bundle(out / "cnn-1.0.0.edgebundle").read(REPORT))["bundle"] == written["bundle"]


def test_a_met_budget_is_bundled_and_no_bundle_asked_for_is_recorded_as_none(digits, tmp_path):
    met = missing_options(digits, auto=auto.AutoOptions(budget=auto.parse_budget("100pt")))
    report = compress(digits / "cnn.onnx", tmp_path / "met", met)
    assert report.bundle == {"written": True, "file": "cnn-1.0.0.edgebundle", "missed_budget": False, "withheld": None}

    none = compress(digits / "cnn.onnx", tmp_path / "none", missing_options(digits, bundle=None))
    assert none.bundle is None
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["model.onnx", "report.json"]


def test_bundle_anyway_without_a_bundle_is_refused_before_any_work(digits, tmp_path):
    options = missing_options(digits, bundle=None, bundle_anyway=True)
    with pytest.raises(ConfigError, match="--bundle-anyway asks for a bundle and --no-bundle for none"):
        compress(digits / "cnn.onnx", tmp_path / "out", options)
    assert not (tmp_path / "out").exists()
