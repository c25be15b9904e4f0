"""``Gemm`` and ``MatMul``: ``FULLY_CONNECTED`` when the weights are constant, else ``BATCH_MATMUL``.

``FULLY_CONNECTED`` wants its weights as ``[out, in]`` (ONNX's ``transB=1`` form) and its input in
memory order, so a channels-last input is transposed back first unless its data is already in
ONNX order (``[N, C, 1, 1]`` after a global pool is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite import layout
from edgekit.tflite.context import attrs, no_activation
from edgekit.tflite.graph import Options

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

_MATRIX = 2


def _in_onnx_order(ctx: Context, name: str) -> int:
    """The tensor of ``name`` with its axes in ONNX order."""
    return ctx.tensor(name, layout.identity(len(ctx.shape(name))))


def _fully_connected(
    ctx: Context, x: int, *, weights: np.ndarray, bias: np.ndarray | None, output: str, name: str, keep_dims: bool
) -> None:
    inputs = [x, ctx.const(weights.astype(np.float32), f"{name}_weights")]
    inputs.append(ctx.const(bias.astype(np.float32), f"{name}_bias") if bias is not None else -1)
    options = no_activation("FullyConnectedOptions", KeepNumDims=keep_dims)
    ctx.emit("FULLY_CONNECTED", inputs, output, layout.identity(len(ctx.shape(output))), options)


def check_gemm(node: onnx.NodeProto, prepared: Prepared) -> str | None:  # noqa: ARG001
    """Any Gemm converts (non-constant B runs as BATCH_MATMUL)."""
    return None


def gemm(node: onnx.NodeProto, ctx: Context) -> None:
    """``Gemm`` → ``FULLY_CONNECTED`` (constant B) or ``BATCH_MATMUL``, then scaling and the bias as needed."""
    a = attrs(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
    x = _in_onnx_order(ctx, node.input[0])
    if trans_a:
        x = ctx.transpose(x, (1, 0))
    out = node.output[0]
    rows, cols = ctx.shape(out)
    c_name = node.input[2] if len(node.input) > 2 else ""  # noqa: PLR2004
    c = ctx.constant(c_name).astype(np.float32) * beta if c_name and ctx.is_constant(c_name) else None
    as_bias = c is not None and c.size in (1, cols) and (c.ndim < _MATRIX or c.shape[0] == 1)
    if ctx.is_constant(node.input[1]):
        w = ctx.constant(node.input[1]).astype(np.float32)
        w = (w if trans_b else w.T) * alpha
        bias = np.broadcast_to(c.reshape(-1), (cols,)) if as_bias and c is not None else None
        if not c_name or as_bias:
            _fully_connected(ctx, x, weights=w, bias=bias, output=out, name=node.name, keep_dims=False)
            return
        product = ctx.temp(f"{node.name}_product", (rows, cols))
        inputs = [x, ctx.const(w, f"{node.name}_weights"), -1]
        ctx.op("FULLY_CONNECTED", inputs, [product], no_activation("FullyConnectedOptions", KeepNumDims=False))
    else:
        product = ctx.temp(f"{node.name}_product", (rows, cols))
        options = Options("BatchMatMulOptions", {"AdjX": False, "AdjY": bool(trans_b)})
        ctx.op("BATCH_MATMUL", [x, _in_onnx_order(ctx, node.input[1])], [product], options)
        if alpha != 1.0:
            scaled = ctx.temp(f"{node.name}_scaled", (rows, cols))
            alpha_t = ctx.const(np.float32(alpha), f"{node.name}_alpha")
            ctx.op("MUL", [product, alpha_t], [scaled], no_activation("MulOptions"))
            product = scaled
        if not c_name:
            ctx.bind(out, product, (0, 1))
            return
    identity = layout.identity(_MATRIX)
    if c is not None:
        addend = ctx.array_operand(c, identity, f"{node.name}_c")
    else:
        addend = ctx.broadcast_operand(c_name, identity)
        if beta != 1.0:
            scaled_c = ctx.temp(f"{node.name}_c_scaled", ctx.graph.tensors[addend].shape)
            ctx.op(
                "MUL",
                [addend, ctx.const(np.float32(beta), f"{node.name}_beta")],
                [scaled_c],
                no_activation("MulOptions"),
            )
            addend = scaled_c
    ctx.emit("ADD", [product, addend], out, identity, no_activation("AddOptions"))


def check_matmul(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """Both operands at least 2-D."""
    ranks = [len(prepared.shapes[i]) for i in node.input]
    return None if min(ranks) >= _MATRIX else "MatMul with a 1-D operand"


def matmul(node: onnx.NodeProto, ctx: Context) -> None:
    """``MatMul`` → ``FULLY_CONNECTED`` (constant 2-D B, any batch dims on A) or ``BATCH_MATMUL``."""
    a_name, b_name = node.input[0], node.input[1]
    out = node.output[0]
    x = _in_onnx_order(ctx, a_name)
    if ctx.is_constant(b_name) and ctx.constant(b_name).ndim == _MATRIX:
        keep = len(ctx.shape(a_name)) > _MATRIX
        weights = ctx.constant(b_name).T
        _fully_connected(ctx, x, weights=weights, bias=None, output=out, name=node.name, keep_dims=keep)
        return
    options = Options("BatchMatMulOptions", {"AdjX": False, "AdjY": False})
    ctx.emit("BATCH_MATMUL", [x, _in_onnx_order(ctx, b_name)], out, layout.identity(len(ctx.shape(out))), options)
