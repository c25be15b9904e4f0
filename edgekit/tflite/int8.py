"""The INT8 variant: int8 activations, int8 weights per output channel, int32 biases.

It rewrites the FP32 TFLite graph (activations already fused) in five steps:

1. every float32 activation tensor gets a scale and zero point (:mod:`edgekit.tflite.calibrate`);
2. ops whose int8 kernels copy bytes (``RESHAPE``, ``TRANSPOSE``, ``PAD``, ``MAX_POOL_2D``, ...)
   take their input's encoding for their output, and ``LOGISTIC``, ``SOFTMAX``, ``TANH`` the fixed
   output encodings TFLite requires of them;
3. Conv and FullyConnected weights become symmetric int8 per output channel, their biases int32
   with scale ``input scale x weight scale``; other float constants int8 per tensor;
4. an op with no int8 kernel runs in float between a ``DEQUANTIZE`` and a ``QUANTIZE``;
5. the model takes and returns float (``QUANTIZE``/``DEQUANTIZE`` at the edge) or int8, by option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite.calibrate import Params
from edgekit.tflite.graph import Operator, Quantization

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgekit.tflite.graph import Graph

#: ops with int8 kernels in LiteRT's builtin resolver (and mostly in XNNPACK)
INT8_OPS = {
    "ADD", "SUB", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "MEAN", "REDUCE_MAX", "REDUCE_MIN", "SUM", "RESHAPE", "TRANSPOSE", "CONCATENATION", "SPLIT", "PAD",
    "PADV2", "MIRROR_PAD", "SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1",
    "HARD_SWISH", "LEAKY_RELU", "PRELU", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "MAXIMUM", "MINIMUM", "ARG_MAX",
    "GATHER", "ABS", "NEG", "RELU_0_TO_1",
}  # fmt: skip
#: ops whose int8 output must be encoded like one of their inputs (the index of that input)
SAME_AS_INPUT = {
    "RESHAPE": 0, "TRANSPOSE": 0, "SPLIT": 1, "PAD": 0, "PADV2": 0, "MIRROR_PAD": 0, "MAX_POOL_2D": 0,
    "AVERAGE_POOL_2D": 0, "GATHER": 0, "RESIZE_BILINEAR": 0, "RESIZE_NEAREST_NEIGHBOR": 0, "MAXIMUM": 0,
    "MINIMUM": 0, "REDUCE_MAX": 0, "REDUCE_MIN": 0,
}  # fmt: skip
#: the output encodings TFLite's int8 kernels require
FIXED_OUTPUT = {
    "LOGISTIC": Params(1.0 / 256, -128),
    "SOFTMAX": Params(1.0 / 256, -128),
    "TANH": Params(1.0 / 128, 0),
    "LOG_SOFTMAX": Params(16.0 / 256, 127),
}
#: the quantized axis of each op's weights (input 1): output channels
_WEIGHT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
_INT8_LIMIT = 127
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def quantize(graph: Graph, qdq: Mapping[str, Params], observed: Mapping[int, tuple[float, float]]) -> dict[str, int]:
    """Rewrite ``graph`` in place into its INT8 form; return where the activation scales came from."""
    params, sources = _activation_params(graph, qdq, observed)
    _constrain(graph, params)
    _rewrite(graph, params)
    for index, p in params.items():
        tensor = graph.tensors[index]
        tensor.dtype = np.dtype(np.int8)
        tensor.quantization = Quantization((p.scale,), (p.zero_point,))
    return sources


def _activation_params(
    graph: Graph, qdq: Mapping[str, Params], observed: Mapping[int, tuple[float, float]]
) -> tuple[dict[int, Params], dict[str, int]]:
    params: dict[int, Params] = {}
    sources = {"qdq": 0, "calibrated": 0}
    for index, tensor in enumerate(graph.tensors):
        if tensor.data is not None or tensor.dtype != np.float32:
            continue
        name = next((n for n in tensor.onnx_names if n in qdq), None)
        if name is not None:
            params[index] = qdq[name]
            sources["qdq"] += 1
        else:
            params[index] = Params.from_range(*observed.get(index, (0.0, 0.0)))
            sources["calibrated"] += 1
    return params, sources


def _constrain(graph: Graph, params: dict[int, Params]) -> None:
    for op in graph.operators:
        outputs = [t for t in op.outputs if t in params]
        if op.opcode in FIXED_OUTPUT:
            for t in outputs:
                params[t] = FIXED_OUTPUT[op.opcode]
        elif op.opcode in SAME_AS_INPUT and op.inputs[SAME_AS_INPUT[op.opcode]] in params:
            for t in outputs:
                params[t] = params[op.inputs[SAME_AS_INPUT[op.opcode]]]


def _rewrite(graph: Graph, params: dict[int, Params]) -> None:
    operators: list[Operator] = []
    for op in graph.operators:
        float_inputs = [k for k, t in enumerate(op.inputs) if t in params]
        float_outputs = [j for j, t in enumerate(op.outputs) if t in params]
        if not float_inputs and not float_outputs:
            operators.append(op)
        elif op.opcode not in INT8_OPS:
            operators += _in_float(graph, op, float_inputs, float_outputs)
        else:
            for k, t in enumerate(op.inputs):
                if t >= 0 and graph.is_constant(t) and graph.tensors[t].dtype == np.float32:
                    op.inputs[k] = _constant(graph, op, k, params)
            if op.opcode == "CONCATENATION":
                operators += _requantize_inputs(graph, op, params)
            operators.append(op)
    graph.operators = operators


def _requantize_inputs(graph: Graph, op: Operator, params: dict[int, Params]) -> list[Operator]:
    """``QUANTIZE`` (int8 to int8) the inputs encoded unlike the output: XNNPACK's concatenation needs one encoding."""
    target = params[op.outputs[0]]
    added = []
    for k, t in enumerate(op.inputs):
        if t not in params or params[t] == target:
            continue
        source = graph.tensors[t]
        moved = graph.add_tensor(f"{source.name}_requantized", source.shape, np.float32)
        params[moved] = target
        added.append(Operator("QUANTIZE", [t], [moved]))
        op.inputs[k] = moved
    return added


def _in_float(graph: Graph, op: Operator, float_inputs: list[int], float_outputs: list[int]) -> list[Operator]:
    """``op`` between a DEQUANTIZE per int8 input and a QUANTIZE per output."""
    before, after = [], []
    for k in float_inputs:
        source = graph.tensors[op.inputs[k]]
        dequantized = graph.add_tensor(f"{source.name}_float", source.shape, np.float32)
        before.append(Operator("DEQUANTIZE", [op.inputs[k]], [dequantized]))
        op.inputs[k] = dequantized
    for j in float_outputs:
        target = graph.tensors[op.outputs[j]]
        result = graph.add_tensor(f"{target.name}_float", target.shape, np.float32)
        after.append(Operator("QUANTIZE", [result], [op.outputs[j]]))
        op.outputs[j] = result
    return [*before, op, *after]


def _constant(graph: Graph, op: Operator, k: int, params: Mapping[int, Params]) -> int:
    """The int8 (or int32 bias) replacement of float constant input ``k`` of an int8 op."""
    tensor = graph.tensors[op.inputs[k]]
    data = np.asarray(tensor.data, dtype=np.float32)
    name = f"{tensor.name}_int8"
    if op.opcode in _WEIGHT_AXIS and k == 1:
        return _per_channel(graph, data, _WEIGHT_AXIS[op.opcode], name)
    if op.opcode in _WEIGHT_AXIS and k == 2:  # noqa: PLR2004  (the bias)
        weights = graph.tensors[op.inputs[1]].quantization
        input_scale = params[op.inputs[0]].scale
        scales = np.asarray(weights.scale if weights else (1.0,), dtype=np.float64) * input_scale
        q = np.clip(np.round(data / scales), _INT32_MIN, _INT32_MAX).astype(np.int32)
        zeros = (0,) * len(scales)
        return graph.add_constant(q, f"{tensor.name}_int32", quantization=Quantization(tuple(scales), zeros))
    if op.opcode == "BATCH_MATMUL":
        scale = max(float(np.abs(data).max(initial=0.0)), 1e-12) / _INT8_LIMIT
        q = np.clip(np.round(data / scale), -_INT8_LIMIT, _INT8_LIMIT).astype(np.int8)
        return graph.add_constant(q, name, quantization=Quantization((scale,), (0,)))
    if op.opcode in SAME_AS_INPUT or op.opcode == "CONCATENATION":
        p = params[op.outputs[0]]  # bytes are compared or copied: the constant must share the encoding
    else:
        p = Params.from_range(float(data.min(initial=0.0)), float(data.max(initial=0.0)))
    return graph.add_constant(p.quantize(data), name, quantization=Quantization((p.scale,), (p.zero_point,)))


def _per_channel(graph: Graph, data: np.ndarray, axis: int, name: str) -> int:
    """Symmetric int8 weights with one scale per slice along ``axis``."""
    moved = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
    scales = np.maximum(np.abs(moved).max(axis=1), 1e-12) / _INT8_LIMIT
    shape = [1] * data.ndim
    shape[axis] = -1
    q = np.clip(np.round(data / scales.reshape(shape)), -_INT8_LIMIT, _INT8_LIMIT).astype(np.int8)
    quantization = Quantization(tuple(float(s) for s in scales), (0,) * len(scales), axis)
    return graph.add_constant(q, name, quantization=quantization)


def int8_edges(graph: Graph, *, float_io: bool) -> None:
    """With ``float_io``, give the model float32 inputs and outputs: ``QUANTIZE`` in, ``DEQUANTIZE`` out."""
    if not float_io:
        return
    entry = []
    for position, index in enumerate(graph.inputs):
        tensor = graph.tensors[index]
        if tensor.quantization is None or tensor.dtype != np.int8:
            continue
        name = tensor.name
        graph.rename(index, f"{name}_int8")
        outer = graph.add_tensor(name, tensor.shape, np.float32)
        entry.append(Operator("QUANTIZE", [outer], [index]))
        graph.inputs[position] = outer
        graph.signature_inputs[name] = outer
    graph.operators[:0] = entry
    for position, index in enumerate(graph.outputs):
        tensor = graph.tensors[index]
        if tensor.quantization is None or tensor.dtype != np.int8:
            continue
        name = tensor.name
        graph.rename(index, f"{name}_int8")
        outer = graph.add_tensor(name, tensor.shape, np.float32)
        graph.add_operator("DEQUANTIZE", [index], [outer])
        graph.outputs[position] = outer
        graph.signature_outputs[name] = outer
