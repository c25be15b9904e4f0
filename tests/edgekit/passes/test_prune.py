"""Magnitude pruning: the smallest weights of big tensors go to zero, and the file zips smaller."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgekit.errors import ConfigError, PassError
from edgekit.measure.size import Size
from edgekit.passes.prune import PruneConfig, PruneMagnitude
from tests.edgekit.graphs import FLOAT, conv_model, make_model, random_input, run, weight


def mlp(seed: int = 0):
    """``x[N, 32] → MatMul W1[32, 16] (512 weights) → Relu → Gemm W2[4, 16] (64 weights, transB)``."""
    rng = np.random.default_rng(seed)
    return make_model(
        [
            helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="fc", transB=1),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4])],
        [weight(rng, "W1", 32, 16), weight(rng, "W2", 4, 16), weight(rng, "b2", 4)],
    )


def weights(model) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_sparsity_reached_on_big_tensors_with_the_smallest_weights(ctx, sparsity):
    model = mlp()
    before = weights(model)

    out = PruneMagnitude(PruneConfig(sparsity=sparsity)).run(model, ctx)

    after = weights(out.model)
    zeroed = after["W1"] == 0
    assert zeroed.mean() == pytest.approx(sparsity, abs=1 / 512)
    assert out.details == {"tensors_pruned": 1, "sparsity_achieved": round(zeroed.mean(), 4), "weights": 512}
    assert np.abs(before["W1"][zeroed]).max() <= np.abs(before["W1"][~zeroed]).min()
    np.testing.assert_array_equal(after["W1"][~zeroed], before["W1"][~zeroed])
    # tensors below min_elements stay dense
    np.testing.assert_array_equal(after["W2"], before["W2"])
    np.testing.assert_array_equal(after["b2"], before["b2"])
    assert (weights(model)["W1"] != 0).all()  # the input model is not touched


def test_the_pruned_model_zips_smaller_and_still_runs(ctx):
    model = mlp()
    out = PruneMagnitude(PruneConfig(sparsity=0.5)).run(model, ctx)

    assert Size.of(out.model.SerializeToString()).zipped < 0.8 * Size.of(model.SerializeToString()).zipped
    (y,) = run(out.model, {"x": random_input((3, 32))})
    assert y.shape == (3, 4)
    assert np.isfinite(y).all()


def test_min_elements_decides_what_is_big(ctx):
    out = PruneMagnitude(PruneConfig(sparsity=0.5, min_elements=64)).run(mlp(), ctx)
    after = weights(out.model)
    assert out.details["tensors_pruned"] == 2
    assert (after["W2"] == 0).mean() == 0.5
    assert (after["b2"] != 0).all()  # a bias is no weight input


def test_conv_weights_are_pruned(ctx):
    out = PruneMagnitude(PruneConfig(sparsity=0.5, min_elements=64)).run(conv_model(), ctx)
    assert (weights(out.model)["W"] == 0).mean() == pytest.approx(0.5, abs=1 / 108)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparsity_out_of_range(sparsity):
    with pytest.raises(ConfigError, match=f"sparsity {sparsity} is out of range"):
        PruneMagnitude(PruneConfig(sparsity=sparsity))


def test_nothing_big_enough_to_prune(ctx):
    with pytest.raises(PassError, match="prune: no float32 Conv/MatMul/Gemm weight with >= 256 elements"):
        PruneMagnitude().run(conv_model(), ctx)  # a 108-weight Conv
