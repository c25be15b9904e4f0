"""Ops over an axis: Softmax, the reductions, ArgMax, and ArrayFeatureExtractor (scikit-learn's label lookup).

They work in whatever layout their input is in: the ONNX axes are remapped to TFLite axes.
``SOFTMAX`` only works on the last axis, so the input is transposed when the axis is not last there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite import layout
from edgekit.tflite.context import attrs
from edgekit.tflite.graph import Options

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

REDUCERS = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM"}
_SOFTMAX_OPSET = 13  # the opset where Softmax stopped flattening everything after its axis
_AXES_AS_INPUT = {"ReduceSum": 13}  # opset where ``axes`` became an input; 18 for the others


def softmax(node: onnx.NodeProto, ctx: Context) -> None:
    """``Softmax``/``LogSoftmax`` → ``SOFTMAX``/``LOG_SOFTMAX`` on the last TFLite axis."""
    opcode = "SOFTMAX" if node.op_type == "Softmax" else "LOG_SOFTMAX"
    options = Options("SoftmaxOptions", {"Beta": 1.0}) if opcode == "SOFTMAX" else None
    x, out = node.input[0], node.output[0]
    shape = ctx.shape(x)
    rank = len(shape)
    old = ctx.opset < _SOFTMAX_OPSET
    axis = int(attrs(node).get("axis", 1 if old else -1)) % rank
    if old and math.prod(shape[axis + 1 :]) != 1:
        # opset < 13: one softmax over everything from ``axis`` on, flattened
        value = ctx.value(x)
        source = value.tensor if layout.same_memory_order(value.perm, shape) else ctx.tensor(x, layout.identity(rank))
        flat_shape = (math.prod(shape[:axis]), math.prod(shape[axis:]))
        flat = ctx.reshape(source, flat_shape, f"{node.name}_flat")
        result = ctx.temp(f"{node.name}_flat_out", flat_shape, ctx.dtype(out))
        ctx.op(opcode, [flat], [result], options)
        ctx.bind(out, ctx.reshape(result, ctx.shape(out), out), layout.identity(rank))
        return
    perm = ctx.perm(x)
    if layout.axis(perm, axis) != rank - 1:
        perm = (*(p for p in perm if p != axis), axis)
    ctx.emit(opcode, [ctx.tensor(x, perm)], out, perm, options)


def _reduce_axes(node: onnx.NodeProto, prepared: Prepared, rank: int) -> list[int] | None:
    """The reduced ONNX axes (all when none are given), or ``None`` when they are computed at run time."""
    raw = attrs(node).get("axes")
    if raw is None and len(node.input) > 1 and node.input[1]:
        if node.input[1] not in prepared.constants:
            return None
        raw = [int(a) for a in prepared.constants[node.input[1]].reshape(-1)]
    if not raw:
        return [] if attrs(node).get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(int(a) % rank for a in raw)


def check_reduce(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """Constant axes."""
    rank = len(prepared.shapes[node.input[0]])
    return None if _reduce_axes(node, prepared, rank) is not None else f"{node.op_type} with axes computed at run time"


def reduce(node: onnx.NodeProto, ctx: Context) -> None:
    """``ReduceMean`` (and Max/Min/Sum) → ``MEAN`` (...) over the remapped axes."""
    x, out = node.input[0], node.output[0]
    perm = ctx.perm(x)
    axes = _reduce_axes(node, ctx.prepared, len(perm)) or []
    if not axes:  # noop_with_empty_axes
        ctx.bind(out, ctx.tensor(x), perm)
        return
    keep = bool(attrs(node).get("keepdims", 1))
    out_perm = perm if keep else layout.drop_axes(perm, axes)
    inputs = [ctx.tensor(x), ctx.ints(sorted(layout.axis(perm, a) for a in axes), f"{node.name}_axes")]
    ctx.emit(REDUCERS[node.op_type], inputs, out, out_perm, Options("ReducerOptions", {"KeepDims": keep}))


def check_argmax(node: onnx.NodeProto, prepared: Prepared) -> str | None:  # noqa: ARG001
    """TFLite's ARG_MAX returns the first maximum."""
    return "ArgMax with select_last_index=1" if attrs(node).get("select_last_index", 0) else None


def argmax(node: onnx.NodeProto, ctx: Context) -> None:
    """``ArgMax`` → ``ARG_MAX`` (int64), then ``RESHAPE`` for ``keepdims``."""
    x, out = node.input[0], node.output[0]
    perm = ctx.perm(x)
    axis = int(attrs(node).get("axis", 0)) % len(perm)
    reduced = layout.drop_axes(perm, [axis])
    reduced_shape = layout.apply(reduced, [d for a, d in enumerate(ctx.shape(x)) if a != axis])
    result = ctx.temp(f"{node.name}_indices", reduced_shape, np.int64)
    options = Options("ArgMaxOptions", {"OutputType": "INT64"})
    ctx.op("ARG_MAX", [ctx.tensor(x), ctx.ints([layout.axis(perm, axis)], f"{node.name}_axis")], [result], options)
    if not attrs(node).get("keepdims", 1):
        ctx.bind(out, result, reduced)
        return
    ctx.bind(out, ctx.reshape(result, layout.apply(perm, ctx.shape(out)), out), perm)


def check_feature_extractor(node: onnx.NodeProto, prepared: Prepared) -> str | None:  # noqa: ARG001
    """Any form converts."""
    return None


def feature_extractor(node: onnx.NodeProto, ctx: Context) -> None:
    """``ai.onnx.ml.ArrayFeatureExtractor(X, indices)`` → ``GATHER`` along X's last axis."""
    x, indices, out = node.input[0], node.input[1], node.output[0]
    data = ctx.tensor(x, layout.identity(len(ctx.shape(x))))
    index_shape = ctx.shape(indices)
    flat = ctx.reshape(
        ctx.tensor(indices, layout.identity(len(index_shape))), (math.prod(index_shape),), f"{node.name}_flat"
    )
    x_shape = ctx.shape(x)
    gathered_shape = (*x_shape[:-1], math.prod(index_shape))
    gathered = ctx.temp(f"{node.name}_gathered", gathered_shape, ctx.dtype(x))
    ctx.op("GATHER", [data, flat], [gathered], Options("GatherOptions", {"Axis": len(x_shape) - 1}))
    out_shape = ctx.shape(out)
    ctx.bind(out, ctx.reshape(gathered, out_shape, out), layout.identity(len(out_shape)))
