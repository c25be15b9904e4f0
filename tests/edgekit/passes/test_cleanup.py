"""Graph clean-up: every method computes what the original did, with no more nodes."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.graph_stats import graph_inputs, graph_outputs
from edgekit.passes.cleanup import CLEANUP_METHODS, Cleanup, CleanupConfig
from tests.edgekit.graphs import cnn_model, foldable_model, op_types, random_input, run


@pytest.mark.parametrize("method", CLEANUP_METHODS)
def test_outputs_unchanged_and_no_more_nodes(ctx, method):
    model = foldable_model()
    before = model.SerializeToString()

    out = Cleanup(CleanupConfig(method=method)).run(model, ctx)

    assert out.details == {"method": method}
    assert not out.warnings
    assert len(out.model.graph.node) <= len(model.graph.node)
    assert graph_inputs(out.model) == graph_inputs(model)
    assert [o.name for o in graph_outputs(out.model)] == ["y"]
    x = random_input((5, 6))
    np.testing.assert_allclose(run(out.model, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-6)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("method", [m for m in CLEANUP_METHODS if m != "none"])
def test_constant_subexpression_and_identity_are_removed(ctx, method):
    out = Cleanup(CleanupConfig(method=method)).run(foldable_model(), ctx)
    assert op_types(out.model) == {"Mul"}


@pytest.mark.parametrize("method", CLEANUP_METHODS)
def test_a_small_cnn_is_unchanged_in_what_it_computes(ctx, method):
    model = cnn_model()
    out = Cleanup(CleanupConfig(method=method)).run(model, ctx)
    x = random_input((3, 3, 8, 8))
    np.testing.assert_allclose(run(out.model, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_default_method_is_onnxslim():
    assert Cleanup().config.method == "onnxslim"
    assert Cleanup().config.to_json() == {"method": "onnxslim"}
