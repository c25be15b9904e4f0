"""Element-wise ops: arithmetic with ONNX broadcasting, activations, unfolded BatchNormalization, Cast.

All of them keep the layout of their input, so an NHWC tensor stays NHWC through them; constant
operands (a bias of shape ``[C, 1, 1]``, a PRelu slope) are reshaped and transposed to match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite.context import attrs, no_activation
from edgekit.tflite.graph import Options

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Max": "MAXIMUM", "Min": "MINIMUM"}
_FUSING = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions"}
UNARY = {
    "Relu": "RELU",
    "Sigmoid": "LOGISTIC",
    "Tanh": "TANH",
    "HardSwish": "HARD_SWISH",
    "Exp": "EXP",
    "Abs": "ABS",
    "Neg": "NEG",
    "Sqrt": "SQRT",
}
#: Clip bounds TFLite has an op for
_CLIPS = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, None): "RELU", (0.0, 1.0): "RELU_0_TO_1"}
#: element types TFLite's CAST reads and writes
_CAST_TYPES = {"float32", "float16", "int32", "int64", "int16", "int8", "uint8", "bool", "float64"}


def binary(node: onnx.NodeProto, ctx: Context) -> None:
    """``Add``/``Sub``/``Mul``/``Div``/``Max``/``Min`` of two inputs, broadcasting as ONNX does.

    A float division by a constant becomes a multiplication by its reciprocal: cheaper, and the
    form INT8 kernels have (TFLite has no int8 ``DIV``).
    """
    opcode = BINARY[node.op_type]
    out = node.output[0]
    perm = ctx.common_perm(node.input, len(ctx.shape(out)))
    divisor = node.input[1]
    if opcode == "DIV" and ctx.is_constant(divisor) and ctx.constant(divisor).dtype.kind == "f":
        reciprocal = (1.0 / ctx.constant(divisor).astype(np.float64)).astype(ctx.constant(divisor).dtype)
        name = ctx.add_constant_value(f"{divisor}_reciprocal", reciprocal)
        inputs = [ctx.broadcast_operand(node.input[0], perm), ctx.broadcast_operand(name, perm)]
        ctx.emit("MUL", inputs, out, perm, no_activation("MulOptions"))
        return
    a, b = (ctx.broadcast_operand(name, perm) for name in node.input)
    options = no_activation(_FUSING[opcode]) if opcode in _FUSING else None
    ctx.emit(opcode, [a, b], out, perm, options)


def check_binary(node: onnx.NodeProto, prepared: Prepared) -> str | None:  # noqa: ARG001
    """Two inputs only (ONNX ``Max``/``Min`` take any number)."""
    return None if len(node.input) == 2 else f"{node.op_type} with {len(node.input)} inputs"  # noqa: PLR2004


def unary(node: onnx.NodeProto, ctx: Context) -> None:
    """An activation with a TFLite op of its own."""
    x = node.input[0]
    ctx.emit(UNARY[node.op_type], [ctx.tensor(x)], node.output[0], ctx.perm(x))


def leaky_relu(node: onnx.NodeProto, ctx: Context) -> None:
    """``LeakyRelu`` → ``LEAKY_RELU``."""
    x = node.input[0]
    alpha = float(attrs(node).get("alpha", 0.01))
    ctx.emit("LEAKY_RELU", [ctx.tensor(x)], node.output[0], ctx.perm(x), Options("LeakyReluOptions", {"Alpha": alpha}))


def prelu(node: onnx.NodeProto, ctx: Context) -> None:
    """``PRelu`` → ``PRELU``, the slope broadcast in the input's layout."""
    x, slope = node.input[0], node.input[1]
    perm = ctx.perm(x)
    ctx.emit("PRELU", [ctx.tensor(x), ctx.broadcast_operand(slope, perm)], node.output[0], perm)


def identity(node: onnx.NodeProto, ctx: Context) -> None:
    """``Identity`` and inference-time ``Dropout``: the output is the input."""
    value = ctx.value(node.input[0])
    ctx.bind(node.output[0], value.tensor, value.perm)


def check_dropout(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """The mask output cannot be produced."""
    used = {i for n in prepared.model.graph.node for i in n.input} | set(prepared.outputs)
    return "Dropout with its mask output used" if len(node.output) > 1 and node.output[1] in used else None


def clip_bounds(node: onnx.NodeProto, prepared: Prepared) -> tuple[float | None, float | None] | None:
    """``(min, max)`` of a Clip (``None`` for no bound), or ``None`` when a bound is not a constant."""
    if prepared.opset < 11:  # noqa: PLR2004  (bounds were attributes before opset 11)
        a = attrs(node)
        lo, hi = a.get("min"), a.get("max")
        return (None if lo is None else float(lo), None if hi is None else float(hi))
    bounds: list[float | None] = []
    for i in (1, 2):
        name = node.input[i] if len(node.input) > i else ""
        if not name:
            bounds.append(None)
        elif name in prepared.constants:
            bounds.append(float(prepared.constants[name]))
        else:
            return None
    return bounds[0], bounds[1]


def check_clip(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """The bounds must be constants."""
    return None if clip_bounds(node, prepared) is not None else "Clip with bounds computed at run time"


def clip(node: onnx.NodeProto, ctx: Context) -> None:
    """``Clip`` → ``RELU6``/``RELU_N1_TO_1``/``RELU``/``RELU_0_TO_1``, or ``MAXIMUM`` and ``MINIMUM``."""
    bounds = clip_bounds(node, ctx.prepared)
    if bounds is None:  # refused by check_clip
        return
    x, out = node.input[0], node.output[0]
    perm = ctx.perm(x)
    if bounds in _CLIPS:
        ctx.emit(_CLIPS[bounds], [ctx.tensor(x)], out, perm)
        return
    lo, hi = bounds
    tensor = ctx.tensor(x)
    if lo is None and hi is None:
        ctx.bind(out, tensor, perm)
        return
    dtype = ctx.dtype(x)
    if lo is not None:
        low = ctx.const(np.array(lo, dtype=dtype), f"{node.name}_min")
        if hi is None:
            ctx.emit("MAXIMUM", [tensor, low], out, perm)
            return
        above = ctx.temp(f"{node.name}_max", ctx.graph.tensors[tensor].shape, dtype)
        ctx.op("MAXIMUM", [tensor, low], [above])
        tensor = above
    high = ctx.const(np.array(hi, dtype=dtype), f"{node.name}_max")
    ctx.emit("MINIMUM", [tensor, high], out, perm)


def hard_sigmoid(node: onnx.NodeProto, ctx: Context) -> None:
    """``HardSigmoid`` → ``MUL`` (alpha), ``ADD`` (beta), ``RELU_0_TO_1``."""
    a = attrs(node)
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    x = node.input[0]
    perm = ctx.perm(x)
    shape = ctx.graph.tensors[ctx.tensor(x)].shape
    scaled = ctx.temp(f"{node.name}_scaled", shape)
    ctx.op(
        "MUL",
        [ctx.tensor(x), ctx.const(np.float32(alpha), f"{node.name}_alpha")],
        [scaled],
        no_activation("MulOptions"),
    )
    shifted = ctx.temp(f"{node.name}_shifted", shape)
    ctx.op("ADD", [scaled, ctx.const(np.float32(beta), f"{node.name}_beta")], [shifted], no_activation("AddOptions"))
    ctx.emit("RELU_0_TO_1", [shifted], node.output[0], perm)


def check_batchnorm(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """Inference form with constant statistics."""
    if len(node.output) > 1 or attrs(node).get("training_mode", 0):
        return "BatchNormalization in training mode"
    if any(i not in prepared.constants for i in node.input[1:5]):
        return "BatchNormalization with statistics computed at run time"
    return None


def batchnorm(node: onnx.NodeProto, ctx: Context) -> None:
    """A ``BatchNormalization`` that follows no Conv: ``MUL`` then ``ADD`` by per-channel constants."""
    gamma, beta, mean, var = (ctx.constant(i).astype(np.float64) for i in node.input[1:5])
    scale = gamma / np.sqrt(var + float(attrs(node).get("epsilon", 1e-5)))
    shift = beta - mean * scale
    x, out = node.input[0], node.output[0]
    perm = ctx.perm(x)
    per_channel = (-1,) + (1,) * (len(perm) - 2)
    scaled = ctx.temp(f"{node.name}_scaled", ctx.graph.tensors[ctx.tensor(x)].shape)
    mul_b = ctx.array_operand(scale.astype(np.float32).reshape(per_channel), perm, f"{node.name}_scale")
    ctx.op("MUL", [ctx.tensor(x), mul_b], [scaled], no_activation("MulOptions"))
    add_b = ctx.array_operand(shift.astype(np.float32).reshape(per_channel), perm, f"{node.name}_shift")
    ctx.emit("ADD", [scaled, add_b], out, perm, no_activation("AddOptions"))


def check_cast(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """Types TFLite has."""
    target = prepared.dtypes.get(node.output[0])
    if target is None or target.name not in _CAST_TYPES:
        return f"Cast to {target.name if target is not None else 'an unknown type'}"
    return None


def cast(node: onnx.NodeProto, ctx: Context) -> None:
    """``Cast`` → ``CAST``, or nothing when the type does not change."""
    x, out = node.input[0], node.output[0]
    value = ctx.value(x)
    if ctx.graph.tensors[value.tensor].dtype == ctx.dtype(out):
        ctx.bind(out, value.tensor, value.perm)
        return
    ctx.emit("CAST", [value.tensor], out, value.perm)
