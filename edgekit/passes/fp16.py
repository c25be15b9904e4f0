"""FP16: weights and compute in half precision, float32 inputs and outputs kept.

Halves the file. Whether it is faster depends on the device: ARMv8.2+ cores and GPUs run FP16
natively; on x86 CPUs ONNX Runtime inserts casts and FP16 is often *slower* — the report's
latency column says which.

onnxconverter-common retypes a ``Cast(to=FLOAT)``'s output as float16 but leaves its ``to`` attribute,
which ONNX Runtime refuses to load ("Type (tensor(float16)) of output arg … of node (/Cast) does not
match expected type"): transformers cast their int64 attention mask that way. Such casts are kept in
float (the converter adds a cast to float16 after them), any the converter still retypes are repaired,
and the result is loaded in ONNX Runtime before it is handed on: a model that does not load is a
:class:`~edgekit.errors.PassError` with the engine's reason, never a file written.

Mixed precision: ``nodes_to_exclude`` (``--exclude``) names nodes that compute in float32, with casts at
their edges. Auto mode's fallback fills it when plain FP16 misses the budget: the nodes whose float16
outputs add the most error, fewest first, until the budget holds (:mod:`edgekit.auto.search`), the way
onnxconverter-common's ``auto_convert_mixed_precision`` searches but judged by the run's own metric.
The usual cause is a value float16 holds too coarsely (near 1000 its step is 0.5: raw sensor readings) or
not at all (beyond 65504).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edgekit.errors import PassError
from edgekit.graph_stats import weight_stats
from edgekit.passes.base import PassConfig, PassContext, PassOutput
from edgekit.passes.quantize_common import check_exclusions, ensure_node_names

if TYPE_CHECKING:
    import onnx

_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16


@dataclass(frozen=True)
class Fp16Config(PassConfig):
    """Options of :class:`ConvertFp16`."""

    #: keep float32 graph inputs and outputs (casts at the edges) so callers need no change
    keep_io_types: bool = True
    #: op types left in float32 (added to onnxconverter-common's default block list)
    op_block_list: tuple[str, ...] = ()
    #: node names left in float32 (added to every ``Cast(to=FLOAT)``, which are always kept): mixed precision
    nodes_to_exclude: tuple[str, ...] = ()


class ConvertFp16:
    """Convert float32 weights and ops to float16 with onnxconverter-common."""

    name: ClassVar[str] = "fp16"
    Config = Fp16Config

    def __init__(self, config: Fp16Config | None = None) -> None:
        """Keep the config."""
        self.config = config or Fp16Config()

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:  # noqa: ARG002
        """Return the float16 model, checked to load in ONNX Runtime."""
        import onnx
        from onnxconverter_common import float16

        if weight_stats(model).bytes_by_dtype.get("float32", 0) == 0:
            raise PassError("nothing to convert: the model has no float32 weights", pass_name=self.name)
        work = onnx.ModelProto()
        work.CopyFrom(model)
        ensure_node_names(work)
        check_exclusions(work, self.config.nodes_to_exclude)
        del work.graph.value_info[:]  # stale or repeated entries mislead the converter; it infers shapes again
        casts = [n.name for n in work.graph.node if n.op_type == "Cast" and _cast_to(n) == _FLOAT]
        block = blocked_ops(self.config)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = float16.convert_float_to_float16(
                    work,
                    keep_io_types=self.config.keep_io_types,
                    op_block_list=block,
                    node_block_list=[*casts, *self.config.nodes_to_exclude],
                    disable_shape_infer=False,
                )
        except Exception as exc:  # onnxconverter-common raises bare Exceptions
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PassError(
                f"float16 conversion failed ({first}): use --mode int8-static", pass_name=self.name
            ) from exc
        repaired = repair_casts(out)
        check_loads(out, self.name)
        clamped = sum("truncated" in str(w.message) for w in caught)
        notes = [f"{clamped} weight value(s) outside float16's range were clamped"] if clamped else []
        details = {
            "keep_io_types": self.config.keep_io_types,
            "values_clamped": clamped,
            "casts_kept_float": len(casts),
            "casts_repaired": repaired,
            "nodes_kept_float": list(self.config.nodes_to_exclude),
        }
        return PassOutput(out, details, notes)


def blocked_ops(config: Fp16Config) -> list[str]:
    """Op types the conversion leaves in float32: onnxconverter-common's defaults and the config's."""
    from onnxconverter_common import float16

    return list(float16.DEFAULT_OP_BLOCK_LIST) + list(config.op_block_list)


def converted_nodes(model: onnx.ModelProto, config: Fp16Config) -> list[str]:
    """The nodes of ``model`` (named) the conversion computes in float16: what mixed precision picks from."""
    blocked = set(blocked_ops(config))
    kept = set(config.nodes_to_exclude)
    return [
        n.name
        for n in model.graph.node
        if n.op_type not in blocked and n.name not in kept and not (n.op_type == "Cast" and _cast_to(n) == _FLOAT)
    ]


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def repair_casts(model: onnx.ModelProto) -> int:
    """Point each ``Cast(to=FLOAT)`` whose output the graph types as float16 at float16, in place; return how many."""
    fp16_values = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == _FLOAT16}
    repaired = 0
    for node in model.graph.node:
        if node.op_type == "Cast" and _cast_to(node) == _FLOAT and node.output[0] in fp16_values:
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = _FLOAT16
            repaired += 1
    return repaired


def check_loads(model: onnx.ModelProto, pass_name: str) -> None:
    """Raise a PassError with ONNX Runtime's reason when it cannot load ``model``."""
    import onnxruntime as ort

    from edgekit.model_io import model_bytes

    try:
        ort.InferenceSession(model_bytes(model), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors: any failure is the answer
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = reason.split(" : ", 3)[-1] if reason.startswith("[ONNXRuntimeError]") else reason
        msg = f"the float16 model does not load in ONNX Runtime ({reason}): use --mode int8-dynamic or int8-static"
        raise PassError(msg, pass_name=pass_name) from exc
