"""FP16: half-precision weights and compute, float32 inputs and outputs kept."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import ConfigError, PassError
from edgekit.graph_stats import graph_inputs, graph_outputs, weight_stats
from edgekit.passes.fp16 import ConvertFp16, Fp16Config, check_loads, converted_nodes, repair_casts
from tests.edgekit.graphs import (
    CNN_INPUT,
    FLOAT,
    cnn_model,
    make_model,
    matmul_model,
    random_input,
    run,
    sensor_input,
    sensor_model,
    weight,
)


def initializer_types(model) -> dict[str, int]:
    return {t.name: t.data_type for t in model.graph.initializer}


def test_float16_weights_float32_io_and_close_outputs(ctx):
    model = cnn_model()
    before = model.SerializeToString()

    out = ConvertFp16().run(model, ctx)

    assert set(initializer_types(out.model).values()) == {TensorProto.FLOAT16}
    assert weight_stats(out.model).total_bytes == weight_stats(model).total_bytes // 2
    assert graph_inputs(out.model) == graph_inputs(model)
    assert graph_outputs(out.model) == graph_outputs(model)
    assert out.details == {
        "keep_io_types": True,
        "values_clamped": 0,
        "casts_kept_float": 0,
        "casts_repaired": 0,
        "nodes_kept_float": [],
    }
    assert not out.warnings
    x = random_input((8, *CNN_INPUT))
    (want,) = run(model, {"x": x})
    (got,) = run(out.model, {"x": x})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-2 * np.abs(want).max())
    assert model.SerializeToString() == before


def test_float16_io_when_asked(ctx):
    out = ConvertFp16(Fp16Config(keep_io_types=False)).run(matmul_model(), ctx)
    assert [s.dtype for s in graph_inputs(out.model)] == ["float16"]
    (got,) = run(out.model, {"x": random_input((2, 16)).astype(np.float16)})
    assert got.dtype == np.float16


def test_blocked_op_keeps_float32_weights(ctx):
    out = ConvertFp16(Fp16Config(op_block_list=("Gemm",))).run(cnn_model(), ctx)
    types = initializer_types(out.model)
    assert types["conv_w"] == TensorProto.FLOAT16
    assert types["fc_w"] == TensorProto.FLOAT
    x = random_input((4, *CNN_INPUT))
    np.testing.assert_allclose(run(out.model, {"x": x})[0], run(cnn_model(), {"x": x})[0], atol=0.05)


def test_nodes_to_exclude_compute_in_float32_mixed_precision(ctx):
    model = sensor_model()
    x = sensor_input(200)
    want = run(model, {"x": x})[0].argmax(1)
    plain = ConvertFp16().run(model, ctx)
    mixed = ConvertFp16(Fp16Config(nodes_to_exclude=("center",))).run(model, ctx)
    assert (run(plain.model, {"x": x})[0].argmax(1) == want).mean() < 0.6  # float16 steps of 0.5 near 1000
    assert (run(mixed.model, {"x": x})[0].argmax(1) == want).mean() == 1.0
    assert initializer_types(mixed.model)["mean"] == TensorProto.FLOAT
    assert initializer_types(mixed.model)["W1"] == TensorProto.FLOAT16
    assert mixed.details["nodes_kept_float"] == ["center"]
    assert converted_nodes(model, Fp16Config(nodes_to_exclude=("center",))) == ["scale", "fc1", "relu", "fc2"]


def test_an_unknown_node_to_exclude_is_refused(ctx):
    with pytest.raises(ConfigError, match="--exclude names no node called centre: node names look like center"):
        ConvertFp16(Fp16Config(nodes_to_exclude=("centre",))).run(sensor_model(), ctx)


def test_weights_beyond_float16_range_are_reported(ctx):
    model = matmul_model()
    w = next(t for t in model.graph.initializer if t.name == "W")
    array = numpy_helper.to_array(w).copy()
    array[0, :3] = 1e6
    w.CopyFrom(numpy_helper.from_array(array, "W"))

    out = ConvertFp16().run(model, ctx)

    assert out.details["values_clamped"] > 0
    assert any("clamped" in warning for warning in out.warnings)
    converted = next(t for t in out.model.graph.initializer if t.name == "W")
    assert np.isfinite(numpy_helper.to_array(converted)).all()


def test_no_float32_weights(ctx):
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4])],
    )
    with pytest.raises(PassError, match="fp16: nothing to convert"):
        ConvertFp16().run(model, ctx)


def masked_model(seed: int = 0) -> onnx.ModelProto:
    """A transformer's pattern: the int64 attention mask cast to float and multiplied in."""
    rng = np.random.default_rng(seed)
    return make_model(
        [
            helper.make_node("Cast", ["mask"], ["m"], to=FLOAT),
            helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
            helper.make_node("Mul", ["x", "m3"], ["h"]),
            helper.make_node("MatMul", ["h", "W"], ["y"]),
        ],
        [
            helper.make_tensor_value_info("x", FLOAT, ["N", 4, 16]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["N", 4]),
        ],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4, 8])],
        [weight(rng, "W", 16, 8), numpy_helper.from_array(np.array([2], dtype=np.int64), "axis")],
    )


def test_cast_of_an_int_mask_to_float_loads_and_matches(ctx):
    model = masked_model()
    feeds = {"x": random_input((3, 4, 16)), "mask": np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])}

    out = ConvertFp16().run(model, ctx)

    assert out.details["casts_kept_float"] == 1
    assert initializer_types(out.model)["W"] == TensorProto.FLOAT16
    (want,) = run(model, feeds)
    (got,) = run(out.model, feeds)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-2 * np.abs(want).max())


def mistyped_cast_model() -> onnx.ModelProto:
    """What onnxconverter-common made of the mask cast before: output typed float16, ``to`` still FLOAT."""
    model = masked_model()
    model.graph.value_info.append(helper.make_tensor_value_info("m", TensorProto.FLOAT16, ["N", 4]))
    return model


def test_a_model_onnx_runtime_refuses_is_a_pass_error_with_its_reason():
    with pytest.raises(PassError, match=r"fp16: the float16 model does not load in ONNX Runtime \(Type Error: "):
        check_loads(mistyped_cast_model(), "fp16")


def test_mistyped_cast_is_repaired():
    model = mistyped_cast_model()

    assert repair_casts(model) == 1

    cast = next(n for n in model.graph.node if n.op_type == "Cast")
    assert helper.get_attribute_value(cast.attribute[0]) == TensorProto.FLOAT16
    assert repair_casts(model) == 0


def test_repeated_value_info_of_the_cast_does_not_mislead_the_converter(ctx):
    """Clean-up can leave a tensor's type recorded twice; the converter then retyped the kept cast's output."""
    model = masked_model()
    for _ in range(2):
        model.graph.value_info.append(helper.make_tensor_value_info("m", FLOAT, ["N", 4]))
    feeds = {"x": random_input((2, 4, 16)), "mask": np.array([[1, 1, 1, 0], [1, 0, 0, 0]])}

    out = ConvertFp16().run(model, ctx)

    np.testing.assert_allclose(run(out.model, feeds)[0], run(model, feeds)[0], atol=0.05)
