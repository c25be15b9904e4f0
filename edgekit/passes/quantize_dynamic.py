"""INT8 dynamic quantization: weights stored as INT8, activations quantized at run time.

Good for MatMul-heavy models (transformers, MLPs, recurrent nets). Conv is left out by
default: dynamic INT8 Conv is often slower than FP32 on CPUs and can wreck accuracy; ask for it
with ``op_types=("Conv", ...)`` when you have measured it helps.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edgekit.errors import PassError
from edgekit.passes.base import PassConfig, PassContext, PassOutput
from edgekit.passes.graph_edit import drop_unused_opsets, gemm_to_matmul
from edgekit.passes.quantize_common import (
    check_op_types,
    quantizable_nodes,
    quantizer_failed,
    quiet_quantizer,
    resolve_reduce_range,
    working_copy,
)

if TYPE_CHECKING:
    import onnx

SUPPORTED_OPS = ("Attention", "Conv", "EmbedLayerNormalization", "Gather", "LSTM", "MatMul", "Transpose")
DEFAULT_OPS = ("MatMul", "Attention", "LSTM", "Gather", "EmbedLayerNormalization")


@dataclass(frozen=True)
class QuantizeDynamicConfig(PassConfig):
    """Options of :class:`QuantizeDynamic`."""

    #: op types to quantize (Conv is not in the default set: see the module docstring)
    op_types: tuple[str, ...] = DEFAULT_OPS
    #: one scale per output channel instead of one per tensor
    per_channel: bool = False
    #: 7-bit weights; ``None`` chooses from the target CPU (see :mod:`edgekit_runtime.cpu`)
    reduce_range: bool | None = None
    #: node names to keep in float
    nodes_to_exclude: tuple[str, ...] = ()


class QuantizeDynamic:
    """Quantize weights of the selected op types to INT8 with run-time activation scales."""

    name: ClassVar[str] = "int8-dynamic"
    Config = QuantizeDynamicConfig

    def __init__(self, config: QuantizeDynamicConfig | None = None) -> None:
        """Check the op types now, so a bad option fails before any work."""
        self.config = config or QuantizeDynamicConfig()
        check_op_types(self.config.op_types, SUPPORTED_OPS, self.name)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:
        """Return the dynamically quantized model."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        work = working_copy(model, self.name, self.config.nodes_to_exclude)
        rewritten = gemm_to_matmul(work) if "MatMul" in self.config.op_types else 0
        targets = quantizable_nodes(work, self.config.op_types)
        if not targets:
            present = sorted({n.op_type for n in work.graph.node})
            msg = (
                f"no {'/'.join(self.config.op_types)} node with float weights (the model has {', '.join(present)}): "
                "use --mode int8-static, or --op-types to name what to quantize"
            )
            raise PassError(msg, pass_name=self.name)
        reduce_range = resolve_reduce_range(self.config.reduce_range, ctx.cpu)
        warnings = []
        convs = sum(n.op_type == "Conv" for n in work.graph.node)
        if convs and "Conv" not in self.config.op_types:
            warnings.append(f"{convs} Conv node(s) left in float: dynamic INT8 Conv is often slower on CPU")
        with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp, quiet_quantizer():
            out_path = Path(tmp) / "dynamic.onnx"
            try:
                quantize_dynamic(
                    work,
                    out_path,
                    op_types_to_quantize=list(self.config.op_types),
                    per_channel=self.config.per_channel,
                    reduce_range=reduce_range,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=list(self.config.nodes_to_exclude),
                )
            except Exception as exc:  # onnxruntime.quantization raises bare Exceptions
                raise quantizer_failed(exc, self.name, "try --mode int8-static or fp16") from exc
            out = onnx.load(str(out_path))
        drop_unused_opsets(out)
        details = {
            "quantized_nodes": len(set(targets) - set(self.config.nodes_to_exclude)),
            "gemm_rewritten_as_matmul": rewritten,
            "reduce_range": reduce_range,
            "per_channel": self.config.per_channel,
        }
        return PassOutput(out, details, warnings)
