"""Where the INT8 variant's activation ranges come from.

First choice: the static INT8 pass's QDQ model (:mod:`edgekit.passes.quantize_static`), whose
``QuantizeLinear`` nodes carry a scale and zero point for every ONNX value it quantized; the TFLite
model then uses the same activation scales as the ONNX INT8 variant. Tensors that have no ONNX
counterpart (a ``PAD`` before a convolution, the steps of a decomposed HardSigmoid) or that the
pass did not quantize get their range from running the FP32 TFLite model itself in LiteRT on the
same calibration data, with every intermediate tensor kept.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import DataError, MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import onnx

    from edgekit.tflite.config import TensorLayout
    from edgekit.tflite.graph import Graph

_INT8_MIN, _INT8_MAX = -128, 127
_UINT8_TO_INT8 = 128
_RENAMED_OUTPUT = "_QuantizeLinear_Input"


@dataclass(frozen=True)
class Params:
    """Per-tensor affine int8 quantization."""

    scale: float
    zero_point: int

    @staticmethod
    def from_range(low: float, high: float) -> Params:
        """Asymmetric int8 covering ``[low, high]`` (widened to hold 0, which must be exact)."""
        low, high = min(float(low), 0.0), max(float(high), 0.0)
        scale = (high - low) / (_INT8_MAX - _INT8_MIN) if high > low else 1.0
        zero_point = int(np.clip(round(_INT8_MIN - low / scale), _INT8_MIN, _INT8_MAX))
        return Params(scale, zero_point)

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """``values`` in this int8 encoding (saturating)."""
        q = np.round(values.astype(np.float64) / self.scale) + self.zero_point
        return np.clip(q, _INT8_MIN, _INT8_MAX).astype(np.int8)


def qdq_params(qdq: onnx.ModelProto) -> dict[str, Params]:
    """The per-tensor activation scales of a QDQ model, by ONNX value name; uint8 ones as their int8 equal."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    found = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or node.input[1] not in inits:
            continue
        scale = inits[node.input[1]]
        zero = inits.get(node.input[2]) if len(node.input) > 2 else None  # noqa: PLR2004
        if scale.size != 1:
            continue
        if zero is None or zero.dtype == np.uint8:
            point = (int(zero.reshape(-1)[0]) if zero is not None else 0) - _UINT8_TO_INT8
        elif zero.dtype == np.int8:
            point = int(zero.reshape(-1)[0])
        else:
            continue  # 16-bit activations: not what an int8 TFLite model can take
        # onnxruntime renames a quantized graph output's producer to ``<output>_QuantizeLinear_Input``
        name = node.input[0].removesuffix(_RENAMED_OUTPUT)
        found[name] = Params(float(scale.reshape(-1)[0]), point)
    return found


def static_qdq(model: onnx.ModelProto, calibration: Sequence[Mapping[str, np.ndarray]]) -> onnx.ModelProto:
    """Run the static INT8 pass (per-channel, int8 activations, full range) to get its activation scales."""
    import onnx

    from edgekit.passes.base import PassContext
    from edgekit.passes.quantize_static import QuantizeStatic, QuantizeStaticConfig
    from edgekit.passes.validate import lift_constants
    from edgekit_runtime.cpu import host_cpu

    work = onnx.ModelProto()
    work.CopyFrom(model)
    lift_constants(work.graph)
    config = QuantizeStaticConfig(per_channel=True, reduce_range=False, activation_type="int8")
    with tempfile.TemporaryDirectory() as tmp:
        batches = [dict(batch) for batch in calibration]
        ctx = PassContext(workdir=Path(tmp), cpu=host_cpu(), calibration=batches)
        return QuantizeStatic(config).run(work, ctx).model


def _interpreter(data: bytes) -> Any:  # noqa: ANN401  (LiteRT has no types)
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise MissingExtraError("calibrating the INT8 TFLite variant", "litert", "ai-edge-litert") from exc
    # no XNNPACK: a delegate keeps the tensors inside it to itself
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(
        model_content=data, experimental_op_resolver_type=resolver, experimental_preserve_all_tensors=True
    )
    interpreter.allocate_tensors()
    return interpreter


def observe_ranges(
    graph: Graph, data: bytes, inputs: Sequence[TensorLayout], calibration: Sequence[Mapping[str, np.ndarray]]
) -> dict[int, tuple[float, float]]:
    """Min and max of every float32 tensor the FP32 model computes on the calibration data, by tensor index."""
    interpreter = _interpreter(data)
    details = {d["name"]: d for d in interpreter.get_input_details()}
    watched = [i for i, t in enumerate(graph.tensors) if t.data is None and t.dtype == np.float32]
    low = dict.fromkeys(watched, np.inf)
    high = dict.fromkeys(watched, -np.inf)
    for batch in calibration:
        for feeds in _model_batches(batch, inputs):
            for name, value in feeds.items():
                interpreter.set_tensor(details[name]["index"], value)
            interpreter.invoke()
            for i in watched:
                value = interpreter.get_tensor(i)
                if value.size:
                    low[i] = min(low[i], float(value.min()))
                    high[i] = max(high[i], float(value.max()))
    return {i: (low[i], high[i]) for i in watched if low[i] <= high[i]}


def _model_batches(batch: Mapping[str, np.ndarray], inputs: Sequence[TensorLayout]) -> list[dict[str, np.ndarray]]:
    """A calibration batch cut into the model's static batch size, in the model's layouts.

    An input given in exactly the model's shape is fed whole every time; others are cut along
    their first axis.
    """
    cut: dict[str, list[np.ndarray]] = {}
    whole: dict[str, np.ndarray] = {}
    for t in inputs:
        if t.name not in batch:
            raise DataError(f"calibration batch has no input '{t.name}': give every model input a value")
        shape = tuple(t.shape[t.perm.index(axis)] for axis in range(len(t.perm)))  # the ONNX shape
        array = np.asarray(batch[t.name], dtype=t.dtype)
        if array.shape == shape:
            whole[t.name] = np.ascontiguousarray(array.transpose(t.perm))
        elif array.shape[1:] == shape[1:] and len(array) % shape[0] == 0:
            step = shape[0]
            cut[t.name] = [
                np.ascontiguousarray(array[i : i + step].transpose(t.perm)) for i in range(0, len(array), step)
            ]
        else:
            msg = f"calibration input '{t.name}' has shape {array.shape}; the model takes {shape}"
            raise DataError(f"{msg}: give batches of that shape (any multiple of its first axis)")
    steps = max((len(chunks) for chunks in cut.values()), default=1)
    if any(len(chunks) != steps for chunks in cut.values()):
        raise DataError("calibration inputs of one batch have different batch sizes: give them the same")
    return [whole | {name: chunks[i] for name, chunks in cut.items()} for i in range(steps)]
