"""INT8 dynamic quantization: MatMul (and Gemm, rewritten as MatMul) weights to INT8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.errors import ConfigError, PassError
from edgekit.graph_stats import weight_stats
from edgekit.passes.quantize_dynamic import QuantizeDynamic, QuantizeDynamicConfig
from tests.edgekit.graphs import (
    FLOAT,
    conv_model,
    gemm_model,
    make_model,
    matmul_model,
    op_types,
    random_input,
    run,
    weight,
)


def assert_close_to_float(original: onnx.ModelProto, quantized: onnx.ModelProto, features: int = 16) -> None:
    x = random_input((32, features))
    (want,) = run(original, {"x": x})
    (got,) = run(quantized, {"x": x})
    # INT8 error is a small fraction of the output's range, and the ranking of classes mostly survives
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
    assert np.mean(got.argmax(axis=1) == want.argmax(axis=1)) >= 0.9


def test_matmul_weights_become_int8(ctx):
    model = matmul_model()
    before = model.SerializeToString()

    out = QuantizeDynamic().run(model, ctx)

    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= op_types(out.model)
    assert "MatMul" not in op_types(out.model)
    assert weight_stats(out.model).bytes_by_dtype.get("int8", 0) >= 16 * 8
    assert out.details["quantized_nodes"] == 1
    assert out.details["gemm_rewritten_as_matmul"] == 0
    assert_close_to_float(model, out.model)
    onnx.checker.check_model(out.model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize(("trans_b", "bias"), [(1, True), (0, True), (1, False)])
def test_gemm_is_rewritten_and_quantized(ctx, trans_b, bias):
    model = gemm_model(trans_b=trans_b, bias=bias)

    out = QuantizeDynamic().run(model, ctx)

    assert out.details["gemm_rewritten_as_matmul"] == 1
    assert "Gemm" not in op_types(out.model)
    assert "MatMulInteger" in op_types(out.model)
    assert_close_to_float(model, out.model)


def test_gemm_with_a_scale_is_left_alone(ctx):
    model = gemm_model()  # alpha != 1 is no plain MatMul + Add: the rewrite must not touch it
    model.graph.node[0].attribute.append(helper.make_attribute("alpha", 2.0))
    with pytest.raises(PassError, match=r"no MatMul/.* node with float weights .*Gemm"):
        QuantizeDynamic().run(model, ctx)


def test_reduce_range_follows_the_cpu_unless_set(ctx):
    assert QuantizeDynamic().run(matmul_model(), ctx).details["reduce_range"] is True  # AVX2, no VNNI
    config = QuantizeDynamicConfig(reduce_range=False)
    assert QuantizeDynamic(config).run(matmul_model(), ctx).details["reduce_range"] is False


def test_per_channel(ctx):
    model = matmul_model()
    out = QuantizeDynamic(QuantizeDynamicConfig(per_channel=True)).run(model, ctx)
    assert out.details["per_channel"] is True
    assert_close_to_float(model, out.model)


def test_a_conv_only_graph_points_to_int8_static(ctx):
    with pytest.raises(PassError, match="int8-static") as info:
        QuantizeDynamic().run(conv_model(), ctx)
    assert info.value.pass_name == QuantizeDynamic.name
    assert "Conv" in str(info.value)


def test_an_unknown_op_type_fails_at_construction():
    with pytest.raises(ConfigError, match=r"cannot quantize op type.*Gemm.*choose from"):
        QuantizeDynamic(QuantizeDynamicConfig(op_types=("MatMul", "Gemm")))


def test_an_already_quantized_model_has_nothing_to_quantize(ctx):
    quantized = QuantizeDynamic().run(matmul_model(), ctx).model
    with pytest.raises(PassError, match="nothing to quantize") as info:
        QuantizeDynamic().run(quantized, ctx)
    assert "MatMulInteger" in str(info.value)


def test_a_model_without_float_weights_has_nothing_to_quantize(ctx):
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4])],
    )
    with pytest.raises(PassError, match="nothing to quantize: it has no float initializers"):
        QuantizeDynamic().run(model, ctx)


def test_excluded_matmul_stays_float(ctx):
    out = QuantizeDynamic(QuantizeDynamicConfig(nodes_to_exclude=("mm",))).run(matmul_model(), ctx)
    assert "MatMulInteger" not in op_types(out.model)
    assert out.details["quantized_nodes"] == 0


def test_excluded_gemm_stays_float(ctx):
    out = QuantizeDynamic(QuantizeDynamicConfig(nodes_to_exclude=("fc",))).run(gemm_model(), ctx)
    assert "MatMulInteger" not in op_types(out.model)


def test_gemms_sharing_a_weight(ctx):
    rng = np.random.default_rng(0)
    model = make_model(
        [
            helper.make_node("Gemm", ["x", "W"], ["h"], name="fc1", transB=1),
            helper.make_node("Gemm", ["h", "W"], ["y"], name="fc2", transB=1),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
        [weight(rng, "W", 16, 16, scale=0.25)],
    )
    out = QuantizeDynamic().run(model, ctx)
    assert_close_to_float(model, out.model)
