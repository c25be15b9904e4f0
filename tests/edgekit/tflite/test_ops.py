"""Every op of the writer's op set, in small graphs, converted to FP32 and run in LiteRT against onnxruntime.

Most graphs start with a 1x1 Conv, so the op under test reads an NHWC tensor and has to remap its
axes; the ``raw`` cases read the graph input directly, in ONNX layout.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from onnx import helper

from edgekit.tflite import TFLiteConfig, convert
from tests.edgekit.tflite.harness import FP32_TOLERANCE, const, graph, random_feeds, relative_error, run_litert, run_ort

C, H, W = 4, 6, 8
_RNG = [np.random.default_rng(0)]


def build(case: str) -> object:
    """The model of a case, with weights that depend on the case's name only (not on test order)."""
    _RNG[0] = np.random.default_rng(zlib.crc32(case.encode()))
    return CASES[case]()


def w(name: str, *shape: int, positive: bool = False) -> object:
    values = _RNG[0].standard_normal(shape).astype(np.float32)
    return const(name, np.abs(values) + 0.5 if positive else values)


def node(op: str, inputs: list[str], outputs: list[str] | None = None, **kw: object) -> object:
    return helper.make_node(op, inputs, outputs or ["y"], name=f"{op.lower()}_{inputs[0]}", **kw)


def after_conv(nodes: list, inits: list = (), *, opset: int = 17, out_channels: int = C) -> object:
    """``x[1, 3, H, W] → Conv 1x1 → h[1, C, H, W]`` then ``nodes`` (which read ``h`` and write ``y``)."""
    prefix = [helper.make_node("Conv", ["x", "pre_w", "pre_b"], ["h"], name="pre")]
    weights = [w("pre_w", out_channels, 3, 1, 1), w("pre_b", out_channels)]
    return graph(prefix + list(nodes), {"x": (1, 3, H, W)}, [*weights, *inits], opset=opset)


def raw(nodes: list, inits: list = (), shape: tuple[int, ...] = (1, C, H, W), *, opset: int = 17) -> object:
    """``nodes`` reading the graph input ``h`` directly."""
    return graph(list(nodes), {"h": shape}, list(inits), opset=opset)


def conv(**kw: object) -> object:
    groups = int(kw.pop("group", 1))
    out_channels = int(kw.pop("out_channels", 6))
    k = int(kw.pop("k", 3))
    inputs = ["x", "cw", "cb"] if kw.pop("bias", True) else ["x", "cw"]
    inits = [w("cw", out_channels, 6 // groups, k, k), w("cb", out_channels)]
    return graph(
        [helper.make_node("Conv", inputs, ["y"], name="conv", group=groups, **kw)], {"x": (1, 6, 9, 10)}, inits
    )


CASES = {
    # convolution
    "conv_same_pads": lambda: conv(pads=[1, 1, 1, 1]),
    "conv_stride2_pads_not_same": lambda: conv(pads=[1, 1, 1, 1], strides=[2, 2]),
    "conv_auto_pad_same_upper_stride2": lambda: conv(auto_pad="SAME_UPPER", strides=[2, 2]),
    "conv_auto_pad_same_lower": lambda: conv(auto_pad="SAME_LOWER", strides=[2, 2]),
    "conv_valid_no_bias": lambda: conv(bias=False),
    "conv_asymmetric_pads": lambda: conv(pads=[0, 2, 1, 0]),
    "conv_dilated": lambda: conv(pads=[2, 2, 2, 2], dilations=[2, 2]),
    "conv_strides_2_1": lambda: conv(pads=[1, 1, 1, 1], strides=[2, 1]),
    "conv_5x5": lambda: conv(k=5, pads=[2, 2, 2, 2]),
    "conv_depthwise": lambda: conv(group=6, pads=[1, 1, 1, 1]),
    "conv_depthwise_multiplier2": lambda: conv(group=6, out_channels=12, pads=[1, 1, 1, 1], strides=[2, 2]),
    "conv_grouped": lambda: conv(group=2, out_channels=4, pads=[1, 1, 1, 1]),
    "conv_grouped_3": lambda: conv(group=3, out_channels=9, k=1),
    "conv_then_batchnorm_folded": lambda: after_conv(
        [node("BatchNormalization", ["h", "g", "bb", "m", "v"], epsilon=1e-3)],
        [w("g", C), w("bb", C), w("m", C), w("v", C, positive=True)],
    ),
    "batchnorm_standalone": lambda: after_conv(
        [node("Relu", ["h"], ["r"]), node("BatchNormalization", ["r", "g", "bb", "m", "v"])],
        [w("g", C), w("bb", C), w("m", C), w("v", C, positive=True)],
    ),
    # arithmetic with broadcasting
    "add_channel_bias": lambda: after_conv([node("Add", ["h", "b"])], [w("b", C, 1, 1)]),
    "add_bias_4d": lambda: after_conv([node("Relu", ["h"], ["r"]), node("Add", ["r", "b"])], [w("b", 1, C, 1, 1)]),
    "sub_last_axis": lambda: after_conv([node("Sub", ["h", "b"])], [w("b", W)]),
    "sub_constant_first": lambda: after_conv([node("Sub", ["b", "h"])], [w("b", H, 1)]),
    "mul_scalar": lambda: after_conv([node("Mul", ["h", "s"])], [const("s", 1.7)]),
    "mul_full": lambda: after_conv([node("Mul", ["h", "b"])], [w("b", 1, C, H, W)]),
    "div_channel": lambda: after_conv([node("Div", ["h", "b"])], [w("b", C, 1, 1, positive=True)]),
    "add_two_paths": lambda: after_conv([node("Relu", ["h"], ["r"]), node("Add", ["h", "r"])]),
    "mul_lower_rank_value": lambda: after_conv(
        [node("ReduceMean", ["h"], ["m"], axes=[0], keepdims=0), node("Mul", ["h", "m"])]
    ),
    "add_pooled_se": lambda: after_conv([node("GlobalAveragePool", ["h"], ["g"]), node("Mul", ["h", "g"])]),
    "max_min": lambda: after_conv(
        [node("Max", ["h", "a"], ["m"]), node("Min", ["m", "b"])], [w("a", C, 1, 1), w("b", W)]
    ),
    "add_raw_2d": lambda: raw([node("Add", ["h", "b"])], [w("b", 5)], shape=(3, 5)),
    # activations
    **{
        f"unary_{op.lower()}": (lambda op=op: after_conv([node(op, ["h"])]))
        for op in ("Relu", "Sigmoid", "Tanh", "HardSwish", "Exp", "Abs", "Neg")
    },
    "hard_sigmoid": lambda: after_conv([node("HardSigmoid", ["h"], alpha=0.2, beta=0.5)]),
    "hard_sigmoid_default": lambda: after_conv([node("HardSigmoid", ["h"])]),
    "leaky_relu": lambda: after_conv([node("LeakyRelu", ["h"], alpha=0.1)]),
    "prelu_channel": lambda: after_conv([node("PRelu", ["h", "s"])], [w("s", C, 1, 1)]),
    "prelu_raw": lambda: raw([node("PRelu", ["h", "s"])], [w("s", C, 1, 1)]),
    "clip_relu6": lambda: after_conv([node("Clip", ["h", "lo", "hi"])], [const("lo", 0.0), const("hi", 6.0)]),
    "clip_n1_1": lambda: after_conv([node("Clip", ["h", "lo", "hi"])], [const("lo", -1.0), const("hi", 1.0)]),
    "clip_0_1": lambda: after_conv([node("Clip", ["h", "lo", "hi"])], [const("lo", 0.0), const("hi", 1.0)]),
    "clip_other": lambda: after_conv([node("Clip", ["h", "lo", "hi"])], [const("lo", -0.3), const("hi", 0.4)]),
    "clip_min_only": lambda: after_conv([node("Clip", ["h", "lo"])], [const("lo", -0.2)]),
    "clip_max_only": lambda: after_conv([node("Clip", ["h", "", "hi"])], [const("hi", 0.2)]),
    "clip_opset10_attributes": lambda: after_conv([node("Clip", ["h"], min=0.0, max=6.0)], opset=10),
    "hardswish_decomposed": lambda: after_conv(
        [
            node("Add", ["h", "three"], ["a"]),
            node("Clip", ["a", "lo", "hi"], ["c"]),
            node("Div", ["c", "six"], ["d"]),
            node("Mul", ["h", "d"]),
        ],
        [const("three", 3.0), const("lo", 0.0), const("hi", 6.0), const("six", 6.0)],
    ),
    # pooling
    "maxpool_2x2": lambda: after_conv([node("MaxPool", ["h"], kernel_shape=[2, 2], strides=[2, 2])]),
    "maxpool_3x3_s2_p1": lambda: after_conv(
        [node("MaxPool", ["h"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    ),
    "maxpool_ceil": lambda: after_conv([node("MaxPool", ["h"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)]),
    "maxpool_same_upper": lambda: after_conv([node("MaxPool", ["h"], kernel_shape=[3, 3], auto_pad="SAME_UPPER")]),
    "avgpool_same_exclude_pad": lambda: after_conv(
        [node("AveragePool", ["h"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    ),
    "avgpool_include_pad": lambda: after_conv(
        [node("AveragePool", ["h"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)]
    ),
    "avgpool_valid": lambda: after_conv([node("AveragePool", ["h"], kernel_shape=[2, 3], strides=[2, 1])]),
    "global_average_pool": lambda: after_conv([node("GlobalAveragePool", ["h"])]),
    "global_max_pool": lambda: after_conv([node("GlobalMaxPool", ["h"])]),
    "global_average_pool_raw": lambda: raw([node("GlobalAveragePool", ["h"])]),
    # dense
    "gemm_transb": lambda: raw([node("Gemm", ["h", "b", "c"], transB=1)], [w("b", 3, 5), w("c", 3)], shape=(2, 5)),
    "gemm_plain_alpha_beta": lambda: raw(
        [node("Gemm", ["h", "b", "c"], alpha=0.5, beta=2.0)], [w("b", 5, 3), w("c", 1, 3)], shape=(2, 5)
    ),
    "gemm_no_bias": lambda: raw([node("Gemm", ["h", "b"])], [w("b", 5, 3)], shape=(2, 5)),
    "gemm_full_c": lambda: raw([node("Gemm", ["h", "b", "c"])], [w("b", 5, 3), w("c", 2, 3)], shape=(2, 5)),
    "gemm_trans_a": lambda: raw([node("Gemm", ["h", "b", "c"], transA=1)], [w("b", 2, 3), w("c", 3)], shape=(2, 5)),
    "gemm_dynamic_b": lambda: graph(
        [node("Gemm", ["h", "k", "c"], transB=1, alpha=1.5)], {"h": (2, 5), "k": (3, 5)}, [w("c", 3)]
    ),
    "matmul_2d": lambda: raw([node("MatMul", ["h", "b"])], [w("b", 5, 3)], shape=(2, 5)),
    "matmul_add_2d": lambda: raw(
        [node("MatMul", ["h", "b"], ["m"]), node("Add", ["m", "c"])], [w("b", 5, 3), w("c", 3)], shape=(2, 5)
    ),
    "matmul_3d_constant": lambda: raw([node("MatMul", ["h", "b"])], [w("b", 5, 3)], shape=(1, 4, 5)),
    "matmul_batch": lambda: graph([node("MatMul", ["a", "b"])], {"a": (2, 3, 4), "b": (2, 4, 5)}),
    "matmul_broadcast": lambda: graph([node("MatMul", ["a", "b"])], {"a": (2, 3, 4), "b": (4, 5)}),
    "matmul_after_conv": lambda: after_conv([node("MatMul", ["h", "b"])], [w("b", W, 3)]),
    # data movement
    "concat_channels": lambda: after_conv([node("Relu", ["h"], ["r"]), node("Concat", ["h", "r"], axis=1)]),
    "concat_width_constant": lambda: after_conv([node("Concat", ["h", "k"], axis=-1)], [w("k", 1, C, H, 2)]),
    "concat_raw": lambda: raw([node("Concat", ["h", "h"], axis=2)]),
    "reshape_after_conv": lambda: after_conv([node("Reshape", ["h", "s"])], [const("s", [1, -1], np.int64)]),
    "reshape_4d": lambda: after_conv([node("Reshape", ["h", "s"])], [const("s", [1, C * H, W, 1], np.int64)]),
    "flatten_after_conv": lambda: after_conv([node("Flatten", ["h"])]),
    "flatten_after_pool_no_transpose": lambda: after_conv(
        [node("GlobalAveragePool", ["h"], ["g"]), node("Flatten", ["g"])]
    ),
    "transpose_to_nhwc": lambda: after_conv([node("Transpose", ["h"], perm=[0, 2, 3, 1])]),
    "transpose_then_conv": lambda: graph(
        [node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), node("Conv", ["t", "cw"], pads=[1, 1, 1, 1])],
        {"x": (1, H, W, 3)},
        [w("cw", C, 3, 3, 3)],
    ),
    "transpose_raw": lambda: raw([node("Transpose", ["h"], perm=[2, 0, 3, 1])]),
    "squeeze_unsqueeze": lambda: after_conv(
        [
            node("GlobalAveragePool", ["h"], ["g"]),
            node("Squeeze", ["g", "axes"], ["s"]),
            node("Unsqueeze", ["s", "axes2"]),
        ],
        [const("axes", [2, 3], np.int64), const("axes2", [0], np.int64)],
    ),
    "unsqueeze_4d_to_5d": lambda: after_conv([node("Unsqueeze", ["h", "axes"])], [const("axes", [2], np.int64)]),
    "squeeze_opset11_attribute": lambda: after_conv(
        [node("GlobalMaxPool", ["h"], ["g"]), node("Squeeze", ["g"], axes=[3])], opset=11
    ),
    # axis ops
    "softmax_channels": lambda: after_conv([node("Softmax", ["h"], axis=1)]),
    "softmax_width": lambda: after_conv([node("Softmax", ["h"], axis=-1)]),
    "softmax_2d": lambda: raw([node("Softmax", ["h"])], shape=(3, 7)),
    "softmax_opset11_flattens": lambda: after_conv([node("Softmax", ["h"], axis=1)], opset=11),
    "log_softmax": lambda: after_conv([node("LogSoftmax", ["h"], axis=1)]),
    "reduce_mean_spatial": lambda: after_conv([node("ReduceMean", ["h"], axes=[2, 3], keepdims=0)]),
    "reduce_mean_spatial_keep": lambda: after_conv([node("ReduceMean", ["h"], axes=[2, 3])]),
    "reduce_mean_channels": lambda: after_conv([node("ReduceMean", ["h"], axes=[1], keepdims=0)]),
    "reduce_mean_all": lambda: after_conv([node("ReduceMean", ["h"], keepdims=0)]),
    "reduce_mean_opset18_input": lambda: after_conv(
        [node("ReduceMean", ["h", "axes"])], [const("axes", [-1], np.int64)], opset=18
    ),
    "reduce_max_sum": lambda: after_conv(
        [node("ReduceMax", ["h"], ["m"], axes=[3]), node("ReduceSum", ["m", "axes"], keepdims=0)],
        [const("axes", [1], np.int64)],
    ),
    "pad_constant": lambda: after_conv([node("Pad", ["h", "p"])], [const("p", [0, 0, 1, 2, 0, 0, 3, 0], np.int64)]),
    "pad_value": lambda: after_conv(
        [node("Pad", ["h", "p", "v"])], [const("p", [0, 1, 1, 0, 0, 0, 1, 1], np.int64), const("v", 0.5)]
    ),
    "pad_reflect": lambda: after_conv(
        [node("Pad", ["h", "p"], mode="reflect")], [const("p", [0, 0, 2, 1, 0, 0, 1, 2], np.int64)]
    ),
    "pad_opset2_attributes": lambda: after_conv(
        [node("Pad", ["h"], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.0)], opset=10
    ),
    # resize
    "resize_nearest_asymmetric_floor": lambda: after_conv(
        [
            node(
                "Resize",
                ["h", "", "s"],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        ],
        [const("s", [1, 1, 2, 2])],
    ),
    "resize_nearest_default_x2": lambda: after_conv(
        [node("Resize", ["h", "", "s"], mode="nearest")], [const("s", [1, 1, 2, 3])]
    ),
    "resize_nearest_align_corners": lambda: after_conv(
        [
            node(
                "Resize",
                ["h", "", "", "z"],
                mode="nearest",
                coordinate_transformation_mode="align_corners",
                nearest_mode="round_prefer_ceil",
            )
        ],
        [const("z", [1, C, 11, 13], np.int64)],
    ),
    "resize_bilinear_half_pixel": lambda: after_conv(
        [node("Resize", ["h", "", "s"], mode="linear")],
        [const("s", [1, 1, 2, 2])],
    ),
    "resize_bilinear_pytorch_half_pixel": lambda: after_conv(
        [node("Resize", ["h", "", "s"], mode="linear", coordinate_transformation_mode="pytorch_half_pixel")],
        [const("s", [1, 1, 2, 1.5])],
    ),
    "resize_bilinear_align_corners": lambda: after_conv(
        [node("Resize", ["h", "", "", "z"], mode="linear", coordinate_transformation_mode="align_corners")],
        [const("z", [1, C, 9, 17], np.int64)],
    ),
    "resize_bilinear_asymmetric": lambda: after_conv(
        [node("Resize", ["h", "", "s"], mode="linear", coordinate_transformation_mode="asymmetric")],
        [const("s", [1, 1, 2, 2])],
    ),
    "resize_bilinear_downscale": lambda: after_conv(
        [node("Resize", ["h", "", "", "z"], mode="linear")], [const("z", [1, C, 3, 4], np.int64)]
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    model = build(case)
    converted = convert(model)
    feeds = random_feeds(model)
    want = run_ort(model, feeds)
    got = run_litert(converted, feeds)
    for name, reference in want.items():
        assert relative_error(got[name], reference) <= FP32_TOLERANCE, (name, converted.op_counts)


def test_fp16_variant_of_every_weighted_case_stays_close():
    for case in ("conv_grouped", "conv_depthwise_multiplier2", "gemm_transb", "prelu_channel", "matmul_after_conv"):
        model = build(case)
        converted = convert(model, TFLiteConfig(variant="fp16"))
        assert "DEQUANTIZE" in converted.op_counts
        feeds = random_feeds(model)
        want, got = run_ort(model, feeds), run_litert(converted, feeds)
        assert relative_error(got["y"], want["y"]) <= 1e-2, case


def test_only_the_flatten_of_channel_first_data_costs_a_transpose():
    assert "TRANSPOSE" not in convert(build("flatten_after_pool_no_transpose")).op_counts
    assert convert(build("flatten_after_conv")).op_counts["TRANSPOSE"] == 1
    assert "TRANSPOSE" not in convert(build("transpose_to_nhwc")).op_counts  # the ONNX Transpose is free
    assert "TRANSPOSE" not in convert(build("softmax_channels")).op_counts  # C is the last axis in NHWC


def test_folding_leaves_one_conv_with_its_activation_fused():
    counts = convert(build("conv_then_batchnorm_folded")).op_counts
    assert counts == {"CONV_2D": 1}
    counts = convert(after_conv([node("Add", ["h", "b"], ["a"]), node("Relu", ["a"])], [w("b", C, 1, 1)])).op_counts
    assert counts == {"CONV_2D": 1}  # the per-channel Add went into the bias, the Relu into the op


def test_grouped_conv_is_split_and_depthwise_is_one_op():
    assert convert(build("conv_grouped")).op_counts == {"SPLIT": 1, "CONV_2D": 2, "CONCATENATION": 1}
    assert convert(build("conv_depthwise")).op_counts == {"DEPTHWISE_CONV_2D": 1}


def test_stride2_conv_whose_pads_are_not_tflite_same_gets_an_explicit_pad():
    counts = convert(build("conv_stride2_pads_not_same")).op_counts
    assert counts == {"CONV_2D": 1, "PAD": 1}
    assert convert(build("conv_same_pads")).op_counts == {"CONV_2D": 1}


def test_outputs_that_are_inputs_or_each_other_get_tensors_of_their_own():
    model = graph(
        [node("Identity", ["x"], ["y"]), node("Relu", ["x"], ["r"]), node("Identity", ["r"], ["z"])],
        {"x": (2, 3)},
        outputs=("y", "r", "z"),
    )
    converted = convert(model)
    assert [t.name for t in converted.outputs] == ["y", "r", "z"]
    feeds = random_feeds(model)
    got, want = run_litert(converted, feeds), run_ort(model, feeds)
    for name in ("y", "r", "z"):
        np.testing.assert_array_equal(got[name], want[name])


def test_image_outputs_stay_nhwc_unless_the_onnx_layout_is_asked_for():
    model = conv(pads=[1, 1, 1, 1])
    nhwc = convert(model)
    assert (nhwc.inputs[0].layout, nhwc.outputs[0].layout) == ("NHWC", "NHWC")
    assert "TRANSPOSE" not in nhwc.op_counts
    kept = convert(model, TFLiteConfig(io_layout="onnx"))
    assert (kept.inputs[0].layout, kept.outputs[0].layout) == ("NCHW", "NCHW")
    assert kept.inputs[0].shape == (1, 6, 9, 10)
    assert kept.op_counts["TRANSPOSE"] == 2
    feeds = random_feeds(model)
    assert relative_error(run_litert(kept, feeds)["y"], run_ort(model, feeds)["y"]) <= FP32_TOLERANCE
    assert kept.manifest()["inputs"] == [{"name": "x", "shape": [1, 6, 9, 10], "dtype": "float32", "layout": "NCHW"}]


def test_outputs_computed_from_constants_alone():
    # folding skips nodes that write graph outputs: these convert with constant inputs
    model = graph(
        [node("Relu", ["x"], ["r"]), node("Identity", ["k"], ["y"]), node("Transpose", ["k"], ["t"], perm=[1, 0])],
        {"x": (2, 3)},
        [const("k", np.arange(6).reshape(2, 3))],
        outputs=("r", "y", "t"),
    )
    converted = convert(model)
    feeds = random_feeds(model)
    got, want = run_litert(converted, feeds), run_ort(model, feeds)
    for name in ("r", "y", "t"):
        np.testing.assert_array_equal(got[name], want[name])
