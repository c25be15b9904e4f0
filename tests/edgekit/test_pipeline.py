"""The pipeline: passes in order, each result with before/after facts, all serialisable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from onnx import numpy_helper

from edgekit.errors import PassError
from edgekit.passes import PruneConfig, PruneMagnitude, Validate
from edgekit.passes.base import PassConfig, PassOutput
from edgekit.passes.fp16 import ConvertFp16
from edgekit.pipeline import GraphFacts, Pipeline
from tests.edgekit.graphs import CNN_INPUT, cnn_model, constant_weight_model, random_input, run


@dataclass(frozen=True)
class _NoConfig(PassConfig):
    pass


class Recorder:
    """A pass that records the order it ran in and hands the model on unchanged."""

    name: ClassVar[str] = "recorder"

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log
        self.config = _NoConfig()

    def run(self, model, ctx):  # noqa: ARG002
        self.log.append(self.label)
        return PassOutput(model, {"label": self.label}, [f"{self.label} ran"])


def test_passes_run_in_order_each_on_the_previous_output(ctx):
    log: list[str] = []
    model = cnn_model()
    pipeline = Pipeline([Recorder("a", log), PruneMagnitude(PruneConfig(sparsity=0.5)), Recorder("b", log)])

    final, results = pipeline.run(model, ctx)

    assert log == ["a", "b"]
    assert [r.name for r in results] == ["recorder", "prune", "recorder"]
    assert results[0].details == {"label": "a"}
    assert results[0].warnings == ["a ran"]
    assert results[1].config == {"sparsity": 0.5, "min_elements": 256}
    fc_w = next(numpy_helper.to_array(t) for t in final.graph.initializer if t.name == "fc_w")
    assert (fc_w == 0).mean() == 0.5  # the second recorder handed on what prune made


def test_before_and_after_facts_chain_from_pass_to_pass(ctx):
    model = constant_weight_model()
    _, results = Pipeline([Validate(), ConvertFp16()]).run(model, ctx)
    validate, fp16 = results

    assert validate.before == GraphFacts.of(model)
    assert validate.before.ops["Constant"] == 2
    assert "Constant" not in validate.after.ops
    assert validate.after.nodes == validate.before.nodes - 2
    assert fp16.before == validate.after
    assert fp16.after.weight_bytes == fp16.before.weight_bytes // 2
    assert all(r.seconds >= 0 for r in results)


def test_the_final_model_is_the_last_pass_output(ctx):
    model = cnn_model()
    final, _ = Pipeline([Validate(), ConvertFp16()]).run(model, ctx)
    x = random_input((2, *CNN_INPUT))
    np.testing.assert_allclose(run(final, {"x": x})[0], run(model, {"x": x})[0], atol=0.05)


def test_results_are_json_serialisable(ctx):
    _, results = Pipeline([Validate(), PruneMagnitude()]).run(cnn_model(), ctx)
    data = json.loads(json.dumps([r.to_json() for r in results]))

    assert [d["name"] for d in data] == ["validate", "prune"]
    assert data[1]["before"]["params"] == data[1]["after"]["params"]
    assert data[1]["details"]["tensors_pruned"] == 1
    assert set(data[0]) == {"name", "config", "seconds", "before", "after", "details", "warnings"}


def test_an_empty_pipeline_returns_the_model(ctx):
    model = cnn_model()
    final, results = Pipeline([]).run(model, ctx)
    assert final is model
    assert results == []


def test_a_failing_pass_stops_the_pipeline(ctx):
    log: list[str] = []
    with pytest.raises(PassError, match="prune"):
        Pipeline([Recorder("a", log), PruneMagnitude(PruneConfig(min_elements=10**6)), Recorder("b", log)]).run(
            cnn_model(), ctx
        )
    assert log == ["a"]
