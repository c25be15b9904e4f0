"""The cheap ranking: the node a test graph makes sensitive comes first."""

from __future__ import annotations

import numpy as np

from edgekit import passes
from edgekit.auto.sensitivity import dequantized_consumers, expose, float_tensors, rank_nodes
from tests.edgekit.graphs import matmul_model, run, sensitive_input, sensitive_model


def _static(model, ctx, x):
    ctx.calibration = [{"x": x[:32]}, {"x": x[32:]}]
    return passes.create("int8-static").run(model, ctx).model


def test_static_int8_ranks_the_sensitive_node_first(ctx):
    model, x = sensitive_model(), sensitive_input(64)
    quantized = _static(model, ctx, x)
    touched = dequantized_consumers(quantized)
    assert set(touched) == {"sensitive", "harmless"}
    ranking = rank_nodes(model, quantized, touched, [{"x": x[:16]}], threads=1)
    assert [s.node for s in ranking] == ["sensitive", "harmless"]
    worst, mild = ranking
    assert worst.added_noise > 10 * max(mild.added_noise, 1e-9)


def test_dynamic_int8_is_ranked_through_its_contrib_ops(ctx):
    model, x = sensitive_model(), sensitive_input(64)
    quantized = passes.create("int8-dynamic").run(model, ctx).model
    assert "MatMul" not in {n.op_type for n in quantized.graph.node}  # rewritten into integer ops
    ranking = rank_nodes(model, quantized, ["harmless", "sensitive"], [{"x": x[:16]}], threads=1)
    assert ranking[0].node == "sensitive"


def test_an_untouched_model_adds_no_noise():
    model = matmul_model()
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    ranking = rank_nodes(model, model, ["mm", "add"], [{"x": x}], threads=1)
    assert [s.added_noise for s in ranking] == [0.0, 0.0]
    assert all(s.sqnr_db == 200.0 for s in ranking)


def test_exposing_tensors_keeps_the_outputs_and_adds_the_asked_ones():
    model = matmul_model()
    assert float_tensors(model) == {"h", "y"}
    exposed = expose(model, {"h"})
    assert [o.name for o in exposed.graph.output] == ["y", "h"]
    x = np.ones((2, 16), np.float32)
    y, h = run(exposed, {"x": x})
    np.testing.assert_allclose(y, run(model, {"x": x})[0])
    assert h.shape == (2, 8)
    assert [o.name for o in model.graph.output] == ["y"]  # the input model is left alone
