"""ONNX → TFLite, without TensorFlow: prepare, check everything, build the graph, write the FlatBuffer.

Nothing is written to disk here (:meth:`TFLiteModel.save` does that), and every unsupported op,
attribute or shape is reported before the graph is built, in one :class:`TFLiteConversionError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.errors import ConfigError, PassError, TFLiteConversionError
from edgekit.tflite import layout
from edgekit.tflite.calibrate import Params, observe_ranges, qdq_params, static_qdq
from edgekit.tflite.config import TensorLayout, TFLiteConfig, TFLiteModel
from edgekit.tflite.context import Context
from edgekit.tflite.flatbuffer import serialize
from edgekit.tflite.fp16 import to_fp16_weights
from edgekit.tflite.graph import Graph
from edgekit.tflite.int8 import int8_edges, quantize
from edgekit.tflite.ops import RULES, rule_key
from edgekit.tflite.optimize import drop_unused_tensors, fuse_activations
from edgekit.tflite.prepare import Prepared, prepare

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import onnx

#: ops that read images channels-last in TFLite: an input they read takes NHWC
_SPATIAL_OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Resize"}
_IMAGE_RANK = 4
#: float types the writer does not compute in: the FP16 variant stores float16 weights itself
_NOT_FLOAT32 = {"float16", "float64", "bfloat16"}
_NAMES_SHOWN = 4


def convert(
    model: onnx.ModelProto,
    config: TFLiteConfig | None = None,
    *,
    calibration: Sequence[Mapping[str, np.ndarray]] | None = None,
    qdq: onnx.ModelProto | None = None,
) -> TFLiteModel:
    """Convert an ONNX model to a TFLite FlatBuffer (in memory).

    The ``int8`` variant needs ``calibration`` (batches of ONNX-layout inputs, as the static INT8
    pass takes them) and takes its activation scales from ``qdq``, that pass's output for this
    model; without one it runs the pass itself.
    """
    config = config or TFLiteConfig()
    if config.variant == "int8" and not calibration:
        raise ConfigError("the int8 TFLite variant needs calibration data: pass calibration batches (--calib FILE.npz)")
    prepared = prepare(model, config)
    check(prepared)
    graph, inputs, outputs = build(prepared, config)
    fuse_activations(graph)
    drop_unused_tensors(graph)
    warnings: list[str] = []
    details: dict[str, object] = {}
    if config.variant == "fp16":
        details["fp16_constants"], warnings = to_fp16_weights(graph)
    elif config.variant == "int8" and calibration:
        observed = observe_ranges(graph, serialize(graph), inputs, calibration)
        scales, warnings = _qdq_scales(model, qdq, calibration)
        details["activation_scales"] = quantize(graph, scales, observed)
        int8_edges(graph, float_io=config.int8_io == "float")
        inputs = tuple(_io(graph, t, io.name, io.perm) for io, t in zip(inputs, graph.inputs, strict=True))
        outputs = tuple(_io(graph, t, io.name, io.perm) for io, t in zip(outputs, graph.outputs, strict=True))
    drop_unused_tensors(graph)
    data = serialize(graph, description=f"edgekit {config.variant}")
    return TFLiteModel(data, config.variant, inputs, outputs, graph.op_counts(), tuple(warnings), details)


def _qdq_scales(
    model: onnx.ModelProto, qdq: onnx.ModelProto | None, calibration: Sequence[Mapping[str, np.ndarray]]
) -> tuple[dict[str, Params], list[str]]:
    """The static INT8 pass's activation scales; none (with a warning) when the pass cannot run on the model."""
    if qdq is not None:
        return qdq_params(qdq), []
    try:
        return qdq_params(static_qdq(model, calibration)), []
    except PassError as exc:
        return {}, [f"no QDQ scales ({exc}): every activation range calibrated in LiteRT"]


def check(prepared: Prepared) -> None:
    """Raise one :class:`TFLiteConversionError` naming every node that cannot be converted."""
    problems: list[tuple[str, str]] = []
    for node in prepared.nodes:
        key = rule_key(node)
        rule = RULES.get(key)
        if rule is None:
            problems.append((key, node.name))
            continue
        values = [v for v in [*node.input, *node.output] if v]
        unknown = [v for v in values if v not in prepared.shapes]
        if unknown:
            problems.append((f"{key} without a static shape for {unknown[0]}", node.name))
            continue
        odd = sorted({prepared.dtypes[v].name for v in values if v in prepared.dtypes} & _NOT_FLOAT32)
        if odd:
            problems.append((f"{key} on {'/'.join(odd)} tensors (convert the float32 model)", node.name))
            continue
        reason = rule.check(node, prepared)
        if reason is not None:
            problems.append((reason, node.name))
    if problems:
        raise TFLiteConversionError(_message(problems), nodes=tuple(problems))


def _message(problems: list[tuple[str, str]]) -> str:
    groups: dict[str, list[str]] = {}
    for what, name in problems:
        groups.setdefault(what, []).append(name)
    parts = []
    for what, names in groups.items():
        shown = ", ".join(names[:_NAMES_SHOWN]) + (
            f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
        )
        parts.append(f"{what} ({'node' if len(names) == 1 else f'{len(names)} nodes'}: {shown})")
    return (
        f"cannot convert to TFLite, unsupported: {'; '.join(parts)}: "
        "replace them in the exporter (or fold them away), or ship this model as ONNX (--to onnx)"
    )


def build(prepared: Prepared, config: TFLiteConfig) -> tuple[Graph, tuple[TensorLayout, ...], tuple[TensorLayout, ...]]:
    """The TFLite graph of a checked model, with its inputs' and outputs' layouts."""
    graph = Graph()
    ctx = Context(graph, prepared)
    readers: dict[str, set[str]] = {}
    for node in prepared.nodes:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    inputs = []
    for name in prepared.inputs:
        shape = prepared.shapes[name]
        perm = layout.identity(len(shape))
        if (
            config.io_layout == "channels-last"
            and len(shape) == _IMAGE_RANK
            and readers.get(name, set()) & _SPATIAL_OPS
        ):
            perm = layout.channels_last(len(shape))
        tensor = graph.add_tensor(name, layout.apply(perm, shape), prepared.dtypes[name])
        graph.inputs.append(tensor)
        graph.signature_inputs[name] = tensor
        ctx.bind(name, tensor, perm)
        inputs.append(_io(graph, tensor, name, perm))
    for node in prepared.nodes:
        RULES[rule_key(node)].convert(node, ctx)
    outputs = [_output(ctx, name, config) for name in prepared.outputs]
    return graph, tuple(inputs), tuple(outputs)


def _output(ctx: Context, name: str, config: TFLiteConfig) -> TensorLayout:
    graph = ctx.graph
    rank = len(ctx.shape(name))
    perm = ctx.perm(name)
    keep = config.io_layout == "channels-last" and (rank == _IMAGE_RANK and perm == layout.channels_last(rank))
    if not keep:
        perm = layout.identity(rank)
    tensor = ctx.tensor(name, perm)
    if tensor in graph.inputs or tensor in graph.outputs or graph.is_constant(tensor):
        # an output must be a tensor of its own: copy with a RESHAPE to the same shape
        src = graph.tensors[tensor]
        copy = graph.add_tensor(name, src.shape, src.dtype)
        graph.add_operator("RESHAPE", [tensor, ctx.ints(src.shape, f"{name}_shape")], [copy])
        tensor = copy
    graph.rename(tensor, name)
    graph.outputs.append(tensor)
    graph.signature_outputs[name] = tensor
    return _io(graph, tensor, name, perm)


def _io(graph: Graph, tensor: int, name: str, perm: layout.Perm) -> TensorLayout:
    t = graph.tensors[tensor]
    q = t.quantization
    if q is None or len(q.scale) != 1:
        return TensorLayout(name, t.shape, t.dtype.name, perm)
    return TensorLayout(name, t.shape, t.dtype.name, perm, q.scale[0], q.zero_point[0])
