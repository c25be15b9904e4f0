"""The validate pass: checker, Constant weights lifted to initializers, shapes inferred."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgekit.errors import ModelError
from edgekit.passes.validate import Validate, ValidateConfig
from tests.edgekit.graphs import FLOAT, constant_weight_model, make_model, matmul_model, op_types, random_input, run


def test_constant_weights_become_initializers_and_outputs_stay_the_same(ctx):
    model = constant_weight_model()
    before = model.SerializeToString()

    out = Validate().run(model, ctx)

    assert out.details["constants_lifted"] == 2
    assert "Constant" not in op_types(out.model)
    assert sorted(t.name for t in out.model.graph.initializer) == ["W", "bias"]
    x = random_input((4, 5))
    np.testing.assert_array_equal(run(out.model, {"x": x})[0], run(model, {"x": x})[0])
    assert model.SerializeToString() == before  # the input model is not touched


def test_a_constant_that_is_a_graph_output_stays_a_node(ctx):
    model = make_model(
        [helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0]), helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 2]), helper.make_tensor_value_info("c", FLOAT, [2])],
    )
    out = Validate().run(model, ctx)
    assert out.details["constants_lifted"] == 0
    np.testing.assert_array_equal(run(out.model, {"x": np.ones((1, 2), np.float32)})[1], [1.0, 2.0])


def test_lifting_can_be_turned_off(ctx):
    out = Validate(ValidateConfig(constants_to_initializers=False)).run(constant_weight_model(), ctx)
    assert "Constant" in op_types(out.model)
    assert "constants_lifted" not in out.details


def test_shapes_are_inferred(ctx):
    out = Validate().run(matmul_model(), ctx)
    assert "h" in {v.name for v in out.model.graph.value_info}
    assert not out.warnings


def test_an_unknown_op_is_a_model_error(ctx):
    model = make_model(
        [helper.make_node("NoSuchOp", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 2])],
        check=False,
    )
    with pytest.raises(ModelError, match=r"onnx\.checker rejects the model .*NoSuchOp") as info:
        Validate().run(model, ctx)
    assert info.value.__cause__ is not None


def test_a_dangling_input_is_a_model_error(ctx):
    model = make_model(
        [helper.make_node("Add", ["x", "nowhere"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 2])],
        check=False,
    )
    with pytest.raises(ModelError, match="fix the exporter's output"):
        Validate().run(model, ctx)
