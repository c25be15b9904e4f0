"""Weight-only quantization: MatMul weights in 4- or 8-bit blocks (``MatMulNBits``), embedding tables in INT8."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgekit import auto, passes
from edgekit.errors import ConfigError, PassError
from edgekit.model_io import model_bytes
from edgekit.passes.quantize_weight_only import (
    QuantizeWeight4,
    QuantizeWeight4Config,
    QuantizeWeight8,
    QuantizeWeight8Config,
    has_large_matmuls,
)
from tests.edgekit.graphs import FLOAT, cnn_model, make_model, matmul_model, op_types, random_input, run, weight


def mlp(features: int = 256, classes: int = 128):
    return matmul_model(features=features, classes=classes)


@pytest.mark.parametrize("block", [32, 128])
def test_large_matmul_weights_become_4_bit_blocks(ctx, block):
    model = mlp()
    before = model.SerializeToString()

    out = QuantizeWeight4(QuantizeWeight4Config(block_size=block)).run(model, ctx)

    assert "MatMulNBits" in op_types(out.model)
    assert "MatMul" not in op_types(out.model)
    assert out.details["quantized_nodes"] == 1
    assert out.details["block_size"] == block
    assert len(model_bytes(out.model)) < len(before) / 5  # 4 bits and a scale per block, from 32 bits
    x = random_input((16, 256))
    (want,) = run(model, {"x": x})
    (got,) = run(out.model, {"x": x})
    assert got.dtype == np.float32
    cosine = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.99
    assert model.SerializeToString() == before


def test_smaller_blocks_follow_the_weights_more_closely(ctx):
    model = mlp()
    x = random_input((16, 256))
    (want,) = run(model, {"x": x})
    errors = []
    for block in (32, 128):
        out = QuantizeWeight4(QuantizeWeight4Config(block_size=block)).run(model, ctx)
        errors.append(float(np.abs(run(out.model, {"x": x})[0] - want).mean()))
    assert errors[0] < errors[1]


def test_small_matmuls_stay_float(ctx):
    with pytest.raises(PassError, match=r"int4-weight: no MatMul with a constant float weight of 1024 values or more"):
        QuantizeWeight4().run(matmul_model(), ctx)  # 16x8 weights


def test_unsupported_block_size():
    with pytest.raises(ConfigError, match="int4-weight block size 48 is not supported: choose 16, 32, 64, 128, 256"):
        QuantizeWeight4(QuantizeWeight4Config(block_size=48))


def embedding_model(seed: int = 0, *, vocab: int = 512, width: int = 128):
    """A token embedding table, then a large MatMul: ``ids[N, 8]`` → ``y[N, 8, width]``."""
    rng = np.random.default_rng(seed)
    return make_model(
        [
            helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
            helper.make_node("MatMul", ["e", "W"], ["y"], name="mm"),
        ],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 8])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 8, width])],
        [weight(rng, "table", vocab, width), weight(rng, "W", width, width, scale=0.1)],
    )


def test_8_bit_weights_and_int8_embedding_table_are_near_float_at_a_quarter_the_size(ctx):
    model = embedding_model()
    ids = {"ids": np.random.default_rng(3).integers(0, 512, (4, 8))}

    out = QuantizeWeight8().run(model, ctx)

    assert out.details["bits"] == 8
    assert out.details["gather_tables_int8"] == 1
    assert {"MatMulNBits", "DequantizeLinear"} <= op_types(out.model)
    assert len(model_bytes(out.model)) < 0.3 * len(model_bytes(model))
    (want,) = run(model, ids)
    (got,) = run(out.model, ids)
    np.testing.assert_allclose(got, want, atol=0.02 * np.abs(want).max())


def test_embedding_table_kept_float_when_asked(ctx):
    out = QuantizeWeight4(QuantizeWeight4Config(gather=False)).run(embedding_model(), ctx)
    assert out.details["gather_tables_int8"] == 0
    assert "DequantizeLinear" not in op_types(out.model)
    assert "Gather" in op_types(out.model)


def test_bits_other_than_4_or_8():
    with pytest.raises(ConfigError, match="int4-weight cannot store weights in 3 bits: choose 4 or 8"):
        QuantizeWeight4(QuantizeWeight4Config(bits=3))


def test_auto_tries_weight_only_candidates_only_where_large_matmuls_are_much_of_the_model():
    found = auto.auto_candidates(
        fp16=passes.Fp16Config(),
        dynamic=passes.QuantizeDynamicConfig(),
        static=passes.QuantizeStaticConfig(),
        has_calibration=False,
    )
    weight_only = [c for c in found if c.pass_name in {"int4-weight", "int8-weight"}]

    assert [(c.name, c.config.bits, c.config.block_size) for c in weight_only] == [  # type: ignore[attr-defined]
        ("int8-weight", 8, 128),
        ("int4-weight", 4, 128),
        ("int4-weight-b64", 4, 64),
        ("int4-weight-b32", 4, 32),
    ]
    assert has_large_matmuls(mlp())
    assert not has_large_matmuls(cnn_model())  # a 10x512 classifier head: under 64 on one side
    assert all(c.suits(mlp()) and not c.suits(cnn_model()) for c in weight_only)
    assert all(c.suits(cnn_model()) for c in found if c not in weight_only)
    assert auto.Candidate("int4-weight", "int4-weight", QuantizeWeight4Config()).suits(cnn_model())  # --mode asks


@pytest.mark.parametrize("level", [0, 4])
def test_accuracy_level_reaches_the_kernel(ctx, level):
    out = QuantizeWeight8(QuantizeWeight8Config(accuracy_level=level)).run(mlp(), ctx)
    (node,) = [n for n in out.model.graph.node if n.op_type == "MatMulNBits"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs.get("accuracy_level", 0) == level
    assert attrs["bits"] == 8


def test_unknown_accuracy_level():
    with pytest.raises(ConfigError, match=r"int8-weight accuracy level 7 is unknown: choose 0 \(float\) to 4 \(int8\)"):
        QuantizeWeight8(QuantizeWeight8Config(accuracy_level=7))
