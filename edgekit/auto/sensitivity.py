"""Which quantized (or float16) nodes hurt most: the cheap ranking the fallback search starts from.

Both models, the float one and its quantized or float16 variant, are run once on a few samples with
every float intermediate tensor exposed as an output. Quantization keeps the float graph's tensor names
(QDQ inserts Q/DQ pairs between them; dynamic quantization rewrites a node but keeps its output
name), and so does the float16 conversion (it adds casts), so each tensor of the float model can be
compared with its counterpart. A
node's sensitivity is the noise it *adds*: the relative noise power of its output minus the worst
of its inputs'. This is the layer-wise signal-to-quantization-noise ratio of
``onnxruntime.quantization.qdq_loss_debug``, computed in memory and for dynamic INT8 too; the
search then confirms every step with the real metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import onnx

_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
_MAX_DB = 200.0


@dataclass(frozen=True)
class NodeSensitivity:
    """How much quantizing one node degrades the signal."""

    node: str
    op_type: str
    #: signal-to-quantization-noise ratio of the node's output, in dB (higher is cleaner)
    sqnr_db: float
    #: relative noise power the node adds over its noisiest input (the ranking key)
    added_noise: float

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        return {
            "node": self.node,
            "op_type": self.op_type,
            "sqnr_db": round(self.sqnr_db, 2),
            "added_noise": round(self.added_noise, 6),
        }


def dequantized_consumers(model: onnx.ModelProto) -> list[str]:
    """Nodes of a QDQ model that read a DequantizeLinear output: the ones static INT8 quantized."""
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type not in {"QuantizeLinear", "DequantizeLinear"} and any(i in dq_outputs for i in n.input)
    ]


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of each typed value, by shape inference where it works."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001  (shape inference fails on some graphs: use what is typed)
        inferred = model
    return {
        vi.name: vi.type.tensor_type.elem_type
        for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }


def float_tensors(model: onnx.ModelProto, typed: dict[str, int] | None = None) -> set[str]:
    """Names of the float32 tensors the model's nodes produce, by shape inference (unless ``typed`` is given)."""
    typed = _types(model) if typed is None else typed
    return {o for n in model.graph.node for o in n.output if typed.get(o) == _FLOAT}


def expose(model: onnx.ModelProto, names: Iterable[str], typed: dict[str, int] | None = None) -> onnx.ModelProto:
    """A copy whose graph outputs include the tensors ``names`` where a node produces them.

    Each is exposed with its type in ``model`` when that is float16 (an FP16 variant), else as float32
    (the contrib ops of dynamic INT8 defeat shape inference: the float model's types hold there).
    """
    import onnx

    wanted = set(names)
    typed = _types(model) if typed is None else typed
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    for node in out.graph.node:
        for name in node.output:
            if name in wanted and name not in present:
                elem = _FLOAT16 if typed.get(name) == _FLOAT16 else _FLOAT
                out.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
                present.add(name)
    return out


def _activations(model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], threads: int) -> dict[str, np.ndarray]:
    from edgekit.measure.session import OrtRunner

    runner = OrtRunner(model.SerializeToString(), threads=threads, label="model with exposed tensors")
    outputs = runner.run_batches(feeds)
    return dict(zip(runner.output_names, outputs, strict=True))


def _noise(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    if reference.shape != candidate.shape:
        return None
    ref = reference.astype(np.float64)
    power = float(np.square(ref).sum())
    noise = float(np.square(ref - candidate.astype(np.float64)).sum())
    if not math.isfinite(noise):
        return math.inf
    return noise / power if power else (0.0 if noise == 0 else math.inf)


def _sqnr_db(noise: float) -> float:
    if noise <= 0:
        return _MAX_DB
    if noise == math.inf:
        return -_MAX_DB
    return max(-_MAX_DB, min(_MAX_DB, -10.0 * math.log10(noise)))


def rank_nodes(
    float_model: onnx.ModelProto,
    quantized: onnx.ModelProto,
    candidates: Sequence[str],
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    threads: int,
) -> list[NodeSensitivity]:
    """Rank ``candidates`` (node names of ``float_model``) by the noise they add, most harmful first."""
    nodes = {n.name: n for n in float_model.graph.node if n.name in set(candidates)}
    initializers = {t.name for t in float_model.graph.initializer}
    tensors = {t for n in nodes.values() for t in [*n.input, *n.output] if t and t not in initializers}
    typed = _types(float_model)  # one shape inference of the float model serves both calls
    floats = float_tensors(float_model, typed) & tensors
    ref = _activations(expose(float_model, floats, typed), feeds, threads)
    # contrib ops of dynamic INT8 defeat shape inference on the quantized model: trust the float model's types
    got = _activations(expose(quantized, floats), feeds, threads)
    noise = {name: _noise(ref[name], got[name]) for name in tensors if name in ref and name in got}
    ranked: list[NodeSensitivity] = []
    for name in candidates:
        node = nodes.get(name)
        if node is None:
            continue
        outs = [v for o in node.output if (v := noise.get(o)) is not None]
        if not outs:
            continue
        ins = [v for i in node.input if (v := noise.get(i)) is not None]
        out_noise, in_noise = max(outs), max(ins, default=0.0)
        # an overflow (inf) passed on is not added here: inf - inf would be nan, which has no rank
        added = 0.0 if math.isinf(out_noise) and math.isinf(in_noise) else out_noise - in_noise
        ranked.append(NodeSensitivity(name, node.op_type, _sqnr_db(out_noise), added))
    ranked.sort(key=lambda s: (-s.added_noise, s.sqnr_db, s.node))
    return ranked
