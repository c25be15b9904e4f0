"""INT8 static quantization in QDQ form, calibrated on the context's batches."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from edgekit.errors import ConfigError, PassError
from edgekit.measure.fidelity import compare
from edgekit.passes.base import PassContext
from edgekit.passes.quantize_static import QuantizeStatic, QuantizeStaticConfig
from edgekit_runtime.cpu import CpuInfo
from tests.edgekit.graphs import CNN_INPUT, cnn_model, matmul_model, op_types, random_input, run

CALIBRATION = random_input((32, *CNN_INPUT), seed=5)
TEST = random_input((64, *CNN_INPUT), seed=6)


def calibrated(ctx: PassContext, *, cpu: CpuInfo | None = None, synthetic: bool = False) -> PassContext:
    return PassContext(
        workdir=ctx.workdir,
        cpu=cpu or ctx.cpu,
        calibration=[{"x": CALIBRATION[i : i + 8]} for i in range(0, len(CALIBRATION), 8)],
        calibration_synthetic=synthetic,
    )


def quantized_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_w_quantized")}


def activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    return {
        t.name: float(numpy_helper.to_array(t))
        for t in model.graph.initializer
        if t.name.endswith("_scale") and not t.dims
    }


def test_qdq_model_with_int8_weights_close_to_the_float_one(ctx):
    model = cnn_model()
    before = model.SerializeToString()

    out = QuantizeStatic().run(model, calibrated(ctx))

    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(out.model)
    weights = quantized_weights(out.model)
    assert sorted(weights) == ["conv_w_quantized", "fc_w_quantized"]
    assert all(w.dtype == np.int8 for w in weights.values())
    assert out.details["weighted_nodes"] == 2
    assert out.details["calibration_batches"] == 4
    assert out.details["calibration_synthetic"] is False
    assert not out.warnings
    (want,) = run(model, {"x": TEST})
    (got,) = run(out.model, {"x": TEST})
    fidelity = compare("logits", want, got)
    assert fidelity.value >= 0.9  # top-1 agreement
    assert fidelity.cosine is not None
    assert fidelity.cosine > 0.99
    onnx.checker.check_model(out.model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize(
    ("flags", "reduce_range", "weight_max"),
    [
        ({"avx2"}, True, 64),  # AVX2 without VNNI: 7-bit weights
        ({"avx2", "avx512_vnni"}, False, 127),
        (set(), False, 127),
    ],
)
def test_reduce_range_follows_the_target_cpu(ctx, flags, reduce_range, weight_max):
    cpu = CpuInfo(arch="x86_64", flags=frozenset(flags), cores=2)
    out = QuantizeStatic().run(cnn_model(), calibrated(ctx, cpu=cpu))
    assert out.details["reduce_range"] is reduce_range
    assert max(int(np.abs(w).max()) for w in quantized_weights(out.model).values()) == weight_max


def test_reduce_range_set_in_the_config_wins(ctx):
    out = QuantizeStatic(QuantizeStaticConfig(reduce_range=False)).run(cnn_model(), calibrated(ctx))
    assert out.details["reduce_range"] is False


def test_synthetic_calibration_is_flagged(ctx):
    out = QuantizeStatic().run(cnn_model(), calibrated(ctx, synthetic=True))
    assert out.details["calibration_synthetic"] is True
    assert any("synthetic" in w for w in out.warnings)


def test_no_calibration_data(ctx):
    with pytest.raises(PassError, match=r"no calibration data .*--calib") as info:
        QuantizeStatic().run(cnn_model(), ctx)
    assert info.value.pass_name == QuantizeStatic.name


@pytest.mark.parametrize("percentile", [50.0, 100.5, -1.0])
def test_percentile_out_of_range(percentile):
    with pytest.raises(ConfigError, match=f"percentile {percentile} is out of range"):
        QuantizeStatic(QuantizeStaticConfig(method="percentile", percentile=percentile))


def test_an_unknown_op_type_fails_at_construction():
    with pytest.raises(ConfigError, match=r"cannot quantize op type.*LSTM"):
        QuantizeStatic(QuantizeStaticConfig(op_types=("Conv", "LSTM")))


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_run_and_stay_close(ctx, method):
    model = cnn_model()
    out = QuantizeStatic(QuantizeStaticConfig(method=method)).run(model, calibrated(ctx))
    assert out.details["method"] == method
    (want,) = run(model, {"x": TEST})
    (got,) = run(out.model, {"x": TEST})
    assert compare("logits", want, got).value >= 0.9


def test_percentile_clips_activation_ranges_tighter_than_minmax(ctx):
    minmax = QuantizeStatic().run(cnn_model(), calibrated(ctx)).model
    config = QuantizeStaticConfig(method="percentile", percentile=99.0)
    percentile = QuantizeStatic(config).run(cnn_model(), calibrated(ctx)).model
    wide, tight = activation_scales(minmax), activation_scales(percentile)
    assert wide.keys() == tight.keys()
    assert "x_scale" in wide
    assert all(tight[k] < wide[k] for k in wide)


def test_int8_activations(ctx):
    out = QuantizeStatic(QuantizeStaticConfig(activation_type="int8")).run(cnn_model(), calibrated(ctx))
    zero_points = [t for t in out.model.graph.initializer if t.name == "x_zero_point"]
    assert [t.data_type for t in zero_points] == [TensorProto.INT8]


def test_excluded_node_stays_float(ctx):
    out = QuantizeStatic(QuantizeStaticConfig(nodes_to_exclude=("fc",))).run(cnn_model(), calibrated(ctx))
    assert sorted(quantized_weights(out.model)) == ["conv_w_quantized"]


def test_calibration_must_fit_the_model(ctx):
    bad = PassContext(workdir=ctx.workdir, cpu=ctx.cpu, calibration=[{"x": random_input((2, 16))}])
    with pytest.raises(PassError, match=r"onnxruntime\.quantization failed"):
        QuantizeStatic().run(matmul_model(features=12), bad)


def test_no_scratch_files_are_left(ctx):
    QuantizeStatic().run(cnn_model(), calibrated(ctx))
    assert list(ctx.workdir.iterdir()) == []


def test_a_gemm_with_a_2d_bias_quantizes(ctx):
    model = cnn_model()
    bias = next(t for t in model.graph.initializer if t.name == "fc_b")
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias).reshape(1, -1), "fc_b"))  # as skl2onnx writes
    onnx.checker.check_model(model)

    out = QuantizeStatic().run(model, calibrated(ctx))

    (want,) = run(model, {"x": TEST})
    (got,) = run(out.model, {"x": TEST})
    assert compare("logits", want, got).value >= 0.9


def test_a_pass_prints_nothing(ctx, capsys):
    QuantizeStatic(QuantizeStaticConfig(method="entropy")).run(cnn_model(), calibrated(ctx))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("opset", [11, 12])
def test_per_channel_on_an_old_opset_upgrades_it_and_loads(ctx, opset):
    model = cnn_model()
    model.opset_import[0].version = opset

    out = QuantizeStatic().run(model, calibrated(ctx))

    assert out.details["opset_upgraded_from"] == opset
    assert [o.version for o in out.model.opset_import if o.domain in {"", "ai.onnx"}] == [13]
    (want,) = run(model, {"x": TEST})
    (got,) = run(out.model, {"x": TEST})  # onnxruntime refused DequantizeLinear(axis) below opset 13
    assert compare("logits", want, got).value >= 0.9


def test_per_tensor_keeps_an_old_opset(ctx):
    model = cnn_model()
    model.opset_import[0].version = 12

    out = QuantizeStatic(QuantizeStaticConfig(per_channel=False)).run(model, calibrated(ctx))

    assert out.details["opset_upgraded_from"] is None
    run(out.model, {"x": TEST})
