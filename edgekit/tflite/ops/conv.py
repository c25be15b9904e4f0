"""2-D convolution and pooling, in NHWC.

TFLite knows two paddings, ``SAME`` (split as TensorFlow splits it: the extra pixel at the end) and
``VALID``. ONNX pads are explicit, so each window op compares its pads with the two; when neither
matches (PaddlePaddle's stride-2 3x3 convs pad 1 on both sides, where SAME pads 0 and 1) a ``PAD``
goes first and the op runs ``VALID``. Grouped convolution that is not depthwise runs as ``SPLIT``,
one ``CONV_2D`` per group, ``CONCATENATION``: not every LiteRT kernel takes grouped filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite import layout
from edgekit.tflite.context import attrs, no_activation
from edgekit.tflite.graph import Options

if TYPE_CHECKING:
    from collections.abc import Sequence

    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

_SPATIAL_2D = 2
NHWC = (0, 2, 3, 1)


@dataclass(frozen=True)
class Window:
    """A Conv's or pool's geometry, and the padding TFLite needs for it."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    #: ``SAME`` or ``VALID``
    padding: str
    #: ``(begin, end)`` per spatial axis to pad before a ``VALID`` op; empty when none
    explicit: tuple[tuple[int, int], ...]
    #: ``(begin, end)`` per spatial axis as ONNX pads
    onnx_pads: tuple[tuple[int, int], ...]


def window(node: onnx.NodeProto, prepared: Prepared, kernel: Sequence[int]) -> Window:
    """The window of a Conv or pool node whose input and output shapes are known."""
    a = attrs(node)
    in_sizes = prepared.shapes[node.input[0]][2:]
    out_sizes = prepared.shapes[node.output[0]][2:]
    n = len(in_sizes)
    strides = tuple(a.get("strides", [1] * n))
    dilations = tuple(a.get("dilations", [1] * n))
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    pads = list(a.get("pads", [0] * 2 * n))
    onnx_pads = []
    for j, (i, o, k, s, d) in enumerate(zip(in_sizes, out_sizes, kernel, strides, dilations, strict=True)):
        total = max((o - 1) * s + (k - 1) * d + 1 - i, 0)
        auto = {"SAME_UPPER": (total // 2, total - total // 2), "SAME_LOWER": (total - total // 2, total // 2)}
        onnx_pads.append(auto.get(auto_pad, (0, 0) if auto_pad == "VALID" else (pads[j], pads[n + j])))
    needed = []
    same = valid = True
    for i, o, k, s, d, (b, _) in zip(in_sizes, out_sizes, kernel, strides, dilations, onnx_pads, strict=True):
        reach = (k - 1) * d + 1
        end = max(0, (o - 1) * s + reach - i - b)  # the end padding the last window reaches
        needed.append((b, end))
        total = max((math.ceil(i / s) - 1) * s + reach - i, 0)
        same = same and o == math.ceil(i / s) and (b, end) == (total // 2, total - total // 2)
        valid = valid and (b, end) == (0, 0)
    padding = "VALID" if valid or not same else "SAME"
    explicit = () if valid or same else tuple(needed)
    return Window(tuple(kernel), strides, dilations, padding, explicit, tuple(onnx_pads))


def pad(ctx: Context, tensor: int, paddings: Sequence[tuple[int, int]], value: float, name: str) -> int:
    """``PAD`` (zeros) or ``PADV2`` (another value) a tensor by ``(begin, end)`` per TFLite axis."""
    src = ctx.graph.tensors[tensor]
    shape = [d + b + e for d, (b, e) in zip(src.shape, paddings, strict=True)]
    out = ctx.temp(f"{name}_padded", shape, src.dtype)
    amounts = ctx.const(np.asarray(paddings, dtype=np.int32).reshape(len(paddings), 2), f"{name}_paddings")
    if value == 0:
        ctx.op("PAD", [tensor, amounts], [out])
    else:
        ctx.op("PADV2", [tensor, amounts, ctx.const(np.array(value, dtype=src.dtype), f"{name}_value")], [out])
    return out


def _nhwc_padding(explicit: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(0, 0), *explicit, (0, 0)]


def _is_2d(node: onnx.NodeProto, prepared: Prepared) -> bool:
    return len(prepared.shapes[node.input[0]]) == _SPATIAL_2D + 2


def check_conv(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """2-D, constant weights and bias, non-negative pads."""
    if not _is_2d(node, prepared):
        return f"Conv over {len(prepared.shapes[node.input[0]]) - 2} spatial dims (only 2-D)"
    if any(name and name not in prepared.constants for name in node.input[1:]):
        return "Conv with weights computed at run time"
    if any(p < 0 for p in attrs(node).get("pads", [])):
        return "Conv with negative pads"
    return None


def conv(node: onnx.NodeProto, ctx: Context) -> None:
    """``Conv`` → ``CONV_2D``, ``DEPTHWISE_CONV_2D``, or one ``CONV_2D`` per group."""
    weights = ctx.constant(node.input[1]).astype(np.float32)
    out_channels, group_in = weights.shape[0], weights.shape[1]
    bias_name = node.input[2] if len(node.input) > 2 else ""  # noqa: PLR2004
    bias = ctx.constant(bias_name).astype(np.float32) if bias_name else np.zeros(out_channels, np.float32)
    geometry = window(node, ctx.prepared, weights.shape[2:])
    x = ctx.tensor(node.input[0], NHWC)
    if geometry.explicit:
        x = pad(ctx, x, _nhwc_padding(geometry.explicit), 0.0, node.name)
    channels = ctx.graph.tensors[x].shape[3]
    groups = int(attrs(node).get("group", 1))
    fields: dict[str, int | float | bool | str] = {
        "Padding": geometry.padding,
        "StrideH": geometry.strides[0],
        "StrideW": geometry.strides[1],
        "DilationHFactor": geometry.dilations[0],
        "DilationWFactor": geometry.dilations[1],
    }
    out = node.output[0]
    if groups == 1:
        inputs = [
            x,
            ctx.const(weights.transpose(0, 2, 3, 1), f"{node.name}_weights"),
            ctx.const(bias, f"{node.name}_bias"),
        ]
        ctx.emit("CONV_2D", inputs, out, NHWC, no_activation("Conv2DOptions", **fields))
    elif groups == channels and group_in == 1:
        filters = ctx.const(weights.transpose(1, 2, 3, 0), f"{node.name}_weights")
        options = no_activation("DepthwiseConv2DOptions", DepthMultiplier=out_channels // channels, **fields)
        ctx.emit("DEPTHWISE_CONV_2D", [x, filters, ctx.const(bias, f"{node.name}_bias")], out, NHWC, options)
    else:
        _grouped(node, ctx, x, weights=weights, bias=bias, groups=groups, fields=fields)


def _grouped(
    node: onnx.NodeProto,
    ctx: Context,
    x: int,
    *,
    weights: np.ndarray,
    bias: np.ndarray,
    groups: int,
    fields: dict[str, int | float | bool | str],
) -> None:
    shape = ctx.graph.tensors[x].shape
    parts = [ctx.temp(f"{node.name}_group{g}_in", (*shape[:3], shape[3] // groups)) for g in range(groups)]
    ctx.op(
        "SPLIT", [ctx.const(np.int32(3), f"{node.name}_axis"), x], parts, Options("SplitOptions", {"NumSplits": groups})
    )
    out_shape = layout.apply(NHWC, ctx.shape(node.output[0]))
    per = weights.shape[0] // groups
    outs = []
    for g, part in enumerate(parts):
        w = weights[g * per : (g + 1) * per].transpose(0, 2, 3, 1)
        conv_out = ctx.temp(f"{node.name}_group{g}", (*out_shape[:3], per))
        inputs = [
            part,
            ctx.const(w, f"{node.name}_weights{g}"),
            ctx.const(bias[g * per : (g + 1) * per], f"{node.name}_bias{g}"),
        ]
        ctx.op("CONV_2D", inputs, [conv_out], no_activation("Conv2DOptions", **fields))
        outs.append(conv_out)
    ctx.emit("CONCATENATION", outs, node.output[0], NHWC, no_activation("ConcatenationOptions", Axis=3))


def _pool_window(node: onnx.NodeProto, prepared: Prepared) -> Window:
    return window(node, prepared, attrs(node)["kernel_shape"])


def check_pool(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """2-D; no dilation, indices or column-major storage; padding TFLite can express for the average."""
    a = attrs(node)
    problems = {
        f"{node.op_type} over {len(prepared.shapes[node.input[0]]) - 2} spatial dims (only 2-D)": not _is_2d(
            node, prepared
        ),
        f"{node.op_type} with dilations": any(d != 1 for d in a.get("dilations", [])),
        "MaxPool with its indices output": len(node.output) > 1 and bool(node.output[1]),
        "MaxPool with storage_order=1": bool(a.get("storage_order", 0)),
    }
    found = next((what for what, bad in problems.items() if bad), None)
    if found is not None or node.op_type != "AveragePool":
        return found
    geometry = _pool_window(node, prepared)
    if not geometry.explicit:
        return None
    if not a.get("count_include_pad", 0):
        return "AveragePool with pads TFLite's SAME does not split the same way (count_include_pad=0)"
    beyond = any(e > onnx_e for (_, e), (_, onnx_e) in zip(geometry.explicit, geometry.onnx_pads, strict=True))
    return "AveragePool with ceil_mode windows past the pads (count_include_pad=1)" if beyond else None


def pool(node: onnx.NodeProto, ctx: Context) -> None:
    """``MaxPool``/``AveragePool`` → ``MAX_POOL_2D``/``AVERAGE_POOL_2D``."""
    geometry = _pool_window(node, ctx.prepared)
    x = ctx.tensor(node.input[0], NHWC)
    maximum = node.op_type == "MaxPool"
    if geometry.explicit:
        fill = float(np.finfo(np.float32).min) if maximum else 0.0
        x = pad(ctx, x, _nhwc_padding(geometry.explicit), fill, node.name)
    options = no_activation(
        "Pool2DOptions",
        Padding=geometry.padding,
        StrideH=geometry.strides[0],
        StrideW=geometry.strides[1],
        FilterHeight=geometry.kernel[0],
        FilterWidth=geometry.kernel[1],
    )
    ctx.emit("MAX_POOL_2D" if maximum else "AVERAGE_POOL_2D", [x], node.output[0], NHWC, options)


def global_pool(node: onnx.NodeProto, ctx: Context) -> None:
    """``GlobalAveragePool``/``GlobalMaxPool`` → ``MEAN``/``REDUCE_MAX`` over the spatial axes, in any layout."""
    x = node.input[0]
    perm = ctx.perm(x)
    axes = sorted(layout.axis(perm, a) for a in range(2, len(perm)))
    opcode = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    inputs = [ctx.tensor(x), ctx.ints(axes, f"{node.name}_axes")]
    ctx.emit(opcode, inputs, node.output[0], perm, Options("ReducerOptions", {"KeepDims": True}))
