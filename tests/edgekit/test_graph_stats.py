"""Facts read off a graph: input specs, weights, op counts, quantization state."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit import graph_stats
from edgekit.graph_stats import TensorSpec
from edgekit.passes.validate import Validate
from tests.edgekit.graphs import FLOAT, IR_VERSION, OPSET, cnn_model, constant_weight_model, make_model, matmul_model


def test_graph_inputs_leave_out_initializers_listed_as_inputs():
    model = matmul_model()
    model.graph.input.extend(  # how exporters before IR 4 wrote weights
        helper.make_tensor_value_info(t.name, FLOAT, list(t.dims)) for t in model.graph.initializer
    )
    onnx.checker.check_model(model)
    assert [s.name for s in graph_stats.graph_inputs(model)] == ["x"]


def test_graph_inputs_read_fixed_symbolic_and_unknown_dims():
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 3, None])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, None)  # rank unknown
    y = helper.make_tensor_value_info("y", FLOAT, None)
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], [x, ids], [y], check=False)

    spec, id_spec = graph_stats.graph_inputs(model)

    assert spec == TensorSpec("x", "float32", ("batch", 3, None))
    assert spec.batch_dim == "batch"
    assert spec.shape_text() == "[batch, 3, ?]"
    assert spec.to_json() == {"name": "x", "dtype": "float32", "shape": ["batch", 3, None]}
    assert id_spec == TensorSpec("ids", "int64", None)
    assert id_spec.batch_dim is None
    assert id_spec.shape_text() == "?"


def test_graph_outputs():
    assert graph_stats.graph_outputs(cnn_model()) == [TensorSpec("logits", "float32", ("N", 10))]


def test_weight_stats_count_initializers_by_dtype():
    model = matmul_model(features=16, classes=8)
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((3, 5), np.int8), "q"))

    stats = graph_stats.weight_stats(model)

    assert stats.param_count == 16 * 8 + 8 + 15
    assert stats.bytes_by_dtype == {"float32": (16 * 8 + 8) * 4, "int8": 15}
    assert stats.total_bytes == (16 * 8 + 8) * 4 + 15
    assert stats.float_bytes == (16 * 8 + 8) * 4


def test_weight_stats_count_constant_node_tensors():
    w = numpy_helper.from_array(np.ones((5, 3), np.float32), "W")
    model = make_model(
        [helper.make_node("Constant", [], ["W"], value=w), helper.make_node("MatMul", ["x", "W"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 3])],
    )
    assert not model.graph.initializer
    stats = graph_stats.weight_stats(model)
    assert stats.param_count == 15
    assert stats.bytes_by_dtype == {"float32": 60}


def test_weight_stats_agree_before_and_after_constants_are_lifted(ctx):
    model = constant_weight_model()  # one Constant(value=...) and one Constant(value_floats=...)
    lifted = Validate().run(model, ctx).model
    assert not [n for n in lifted.graph.node if n.op_type == "Constant"]
    assert graph_stats.weight_stats(model) == graph_stats.weight_stats(lifted)


def test_quantization_state_of_a_float_graph():
    assert graph_stats.quantization_state(cnn_model()) is None


def test_quantization_state_of_a_qdq_graph():
    w = numpy_helper.from_array(np.arange(-8, 8, dtype=np.int8).reshape(4, 4), "w_q")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(0, np.int8), "zero")
    model = make_model(
        [
            helper.make_node("DequantizeLinear", ["w_q", "scale", "zero"], ["w"]),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4])],
        [w, scale, zero],
    )
    assert graph_stats.quantization_state(model) == "has DequantizeLinear"


def test_quantization_state_from_narrow_weights_alone():
    model = make_model(
        [helper.make_node("Cast", ["w_q"], ["w"], to=FLOAT), helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.ones((4, 4), np.int8), "w_q")],
    )
    assert graph_stats.quantization_state(model) == "most weights are 8-bit or narrower"


def test_quantization_state_of_a_float16_graph():
    w = numpy_helper.from_array(np.ones((4, 4), np.float16), "w")
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 4])],
        [w],
    )
    assert graph_stats.quantization_state(model) == "most weights are float16"


def test_op_histogram_most_frequent_first_with_custom_domains_prefixed():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Relu", ["b"], ["c"]),
        helper.make_node("Gelu", ["c"], ["d"], domain="com.microsoft"),
        helper.make_node("Identity", ["d"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", FLOAT, [1])],
        [helper.make_tensor_value_info("y", FLOAT, [1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        ir_version=IR_VERSION,
    )

    histogram = graph_stats.op_histogram(model)

    assert histogram == {"Relu": 3, "com.microsoft.Gelu": 1, "Identity": 1}
    assert next(iter(histogram)) == "Relu"
    assert graph_stats.opsets(model) == {"ai.onnx": OPSET, "com.microsoft": 1}
    assert graph_stats.default_opset(model) == OPSET


def test_dtype_name():
    assert graph_stats.dtype_name(TensorProto.FLOAT) == "float32"
    assert graph_stats.dtype_name(TensorProto.INT64) == "int64"
    assert graph_stats.dtype_name(TensorProto.BFLOAT16) == "bfloat16"
