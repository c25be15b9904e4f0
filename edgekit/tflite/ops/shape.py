"""Ops that move data around without computing: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat.

``Transpose`` costs nothing: the output is the same tensor in another layout. Squeeze and Unsqueeze
add or drop size-1 axes, which never changes memory order, so they keep the layout too. Reshape and
Flatten read memory order: their input is transposed back to ONNX order first, unless its data is
already in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.tflite import layout
from edgekit.tflite.context import attrs, no_activation

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared


def check_reshape(node: onnx.NodeProto, prepared: Prepared) -> str | None:  # noqa: ARG001
    """The output shape is static after preparation; nothing more is needed."""
    return None


def reshape(node: onnx.NodeProto, ctx: Context) -> None:
    """``Reshape``/``Flatten`` → ``RESHAPE`` to the inferred static shape (after a ``TRANSPOSE`` when needed)."""
    x, out = node.input[0], node.output[0]
    value = ctx.value(x)
    if not layout.same_memory_order(value.perm, ctx.shape(x)):
        source = ctx.tensor(x, layout.identity(len(value.perm)))
    else:
        source = value.tensor
    shape = ctx.shape(out)
    target = ctx.ints(shape, f"{node.name}_shape")
    ctx.emit("RESHAPE", [source, target], out, layout.identity(len(shape)))


def _axes(node: onnx.NodeProto, ctx: Context, rank: int) -> list[int] | None:
    """The ``axes`` attribute or (opset 13+) input, normalized; ``None`` when absent."""
    raw = attrs(node).get("axes")
    if raw is None and len(node.input) > 1 and node.input[1]:
        raw = [int(a) for a in ctx.constant(node.input[1]).reshape(-1)]
    return None if raw is None else sorted(int(a) % rank for a in raw)


def check_axes_constant(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """Axes given as an input must be constant."""
    if len(node.input) > 1 and node.input[1] and node.input[1] not in prepared.constants:
        return f"{node.op_type} with axes computed at run time"
    return None


def squeeze(node: onnx.NodeProto, ctx: Context) -> None:
    """``Squeeze`` → ``RESHAPE``; the layout keeps its order without the dropped axes."""
    x, out = node.input[0], node.output[0]
    in_shape = ctx.shape(x)
    axes = _axes(node, ctx, len(in_shape))
    if axes is None:
        axes = [a for a, d in enumerate(in_shape) if d == 1]
    perm = layout.drop_axes(ctx.perm(x), axes)
    target = ctx.ints(layout.apply(perm, ctx.shape(out)), f"{node.name}_shape")
    ctx.emit("RESHAPE", [ctx.tensor(x), target], out, perm)


def unsqueeze(node: onnx.NodeProto, ctx: Context) -> None:
    """``Unsqueeze`` → ``RESHAPE``; the new size-1 axes go where ONNX puts them."""
    x, out = node.input[0], node.output[0]
    axes = _axes(node, ctx, len(ctx.shape(out))) or []
    perm = layout.insert_axes(ctx.perm(x), axes)
    target = ctx.ints(layout.apply(perm, ctx.shape(out)), f"{node.name}_shape")
    ctx.emit("RESHAPE", [ctx.tensor(x), target], out, perm)


def transpose(node: onnx.NodeProto, ctx: Context) -> None:
    """``Transpose``: no op; the output is the input tensor, held in a composed layout."""
    x, out = node.input[0], node.output[0]
    rank = len(ctx.shape(x))
    onnx_perm = tuple(int(p) for p in attrs(node).get("perm", range(rank - 1, -1, -1)))
    inverse = layout.invert(onnx_perm)
    value = ctx.value(x)
    ctx.bind(out, value.tensor, tuple(inverse[p] for p in value.perm))


def concat(node: onnx.NodeProto, ctx: Context) -> None:
    """``Concat`` → ``CONCATENATION`` along the remapped axis, every input in one layout."""
    out = node.output[0]
    rank = len(ctx.shape(out))
    names = [i for i in node.input if i]
    perm = ctx.common_perm(names, rank)
    inputs = [ctx.tensor(name, perm) for name in names]
    axis = layout.axis(perm, int(attrs(node)["axis"]))
    ctx.emit("CONCATENATION", inputs, out, perm, no_activation("ConcatenationOptions", Axis=axis))
