"""Weight-only quantization: large MatMul weights in 4- or 8-bit blocks, embedding tables in INT8.

ONNX Runtime's ``MatMulNBits`` (a ``com.microsoft`` op) unpacks a block of ``block_size`` weights
along the reduction axis with one scale (and, unless ``symmetric``, one zero point) per block.
Constant ``Gather`` tables (a transformer's token embeddings, often half its size) are stored as
INT8 with a scale and dequantized after the lookup. No calibration data is needed: activations are
never given fixed scales. By default (``accuracy_level`` 4) the kernel quantizes them per block as
it runs and multiplies in INT8, which on CPUs with integer dot products is faster than float and
costs little fidelity at 8 bits (all-MiniLM-L6-v2: worst cosine 0.998 at a quarter of the size);
``accuracy_level`` 0 computes in float (more faithful; at 8 bits much slower on x86). 4 bits halve
the MatMul weights again at a visible cost. It suits transformers and MLPs, whose size is their
weights; Conv and small MatMuls are left as they are. Smaller blocks follow the weights more
closely and are larger.

Two passes share this code: ``int4-weight`` and ``int8-weight`` differ only in their default ``bits``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edgekit.errors import ConfigError, PassError
from edgekit.passes.base import PassConfig, PassContext, PassOutput
from edgekit.passes.graph_edit import gemm_to_matmul
from edgekit.passes.quantize_common import quantizable_nodes, quantizer_failed, quiet_quantizer, working_copy

if TYPE_CHECKING:
    import onnx

BLOCK_SIZES = (16, 32, 64, 128, 256)
BITS = (4, 8)
#: MatMulNBits' compute types: 0 as the input (float), 1 float32, 2 float16, 3 bfloat16, 4 int8
ACCURACY_LEVELS = (0, 1, 2, 3, 4)
_MATRIX = 2  # weights MatMulNBits takes are 2-D
#: the auto search tries weight-only candidates only where MatMul weights of at least this many rows and columns …
LARGE_SIDE = 64
#: … hold at least this share of the model's float parameters
LARGE_SHARE = 0.3


@dataclass(frozen=True)
class QuantizeWeight4Config(PassConfig):
    """Options of :class:`QuantizeWeight4` (and of :class:`QuantizeWeight8`, whose ``bits`` is 8)."""

    #: weights per block along the reduction axis, each block with its own scale: 16, 32, 64, 128 or 256
    block_size: int = 128
    #: bits per MatMul weight: 4 or 8
    bits: int = 4
    #: no zero points (smaller, usually a little less faithful)
    symmetric: bool = False
    #: compute type: 4 multiplies in INT8 (activations quantized per block at run time), 0 in float
    accuracy_level: int = 4
    #: MatMul weights with fewer values stay float
    min_weights: int = 1024
    #: store constant Gather tables (embeddings) as INT8 too
    gather: bool = True
    #: node names to keep in float
    nodes_to_exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuantizeWeight8Config(QuantizeWeight4Config):
    """Options of :class:`QuantizeWeight8`."""

    bits: int = 8


class QuantizeWeight4:
    """Store large constant MatMul weights (Gemm rewritten as MatMul) in blockwise INT4 (``MatMulNBits``)."""

    name: ClassVar[str] = "int4-weight"
    Config: ClassVar[type[QuantizeWeight4Config]] = QuantizeWeight4Config

    def __init__(self, config: QuantizeWeight4Config | None = None) -> None:
        """Check the block size and bits now, so a bad option fails before any work."""
        self.config = config or self.Config()
        if self.config.block_size not in BLOCK_SIZES:
            choices = ", ".join(map(str, BLOCK_SIZES))
            raise ConfigError(f"{self.name} block size {self.config.block_size} is not supported: choose {choices}")
        if self.config.bits not in BITS:
            raise ConfigError(f"{self.name} cannot store weights in {self.config.bits} bits: choose 4 or 8")
        if self.config.accuracy_level not in ACCURACY_LEVELS:
            msg = f"{self.name} accuracy level {self.config.accuracy_level} is unknown: choose 0 (float) to 4 (int8)"
            raise ConfigError(msg)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:
        """Return the model with its large MatMul weights (and embedding tables) quantized."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        work = working_copy(model, self.name, self.config.nodes_to_exclude)
        rewritten = gemm_to_matmul(work)
        excluded = set(self.config.nodes_to_exclude)
        weights = matmul_weights(work)
        targets = [n for n, (rows, cols) in weights.items() if rows * cols >= self.config.min_weights]
        targets = [n for n in targets if n not in excluded]
        if not targets:
            msg = (
                f"no MatMul with a constant float weight of {self.config.min_weights} values or more: "
                "use --mode int8-dynamic or fp16"
            )
            raise PassError(msg, pass_name=self.name)
        tables = [n for n in quantizable_nodes(work, ("Gather",)) if n not in excluded] if self.config.gather else []
        fix = "try --mode int8-dynamic or fp16"
        with quiet_quantizer():
            if tables:
                with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
                    out_path = Path(tmp) / "gather.onnx"
                    try:
                        quantize_dynamic(
                            work, out_path, op_types_to_quantize=["Gather"], weight_type=QuantType.QInt8,
                            nodes_to_quantize=tables,
                        )  # fmt: skip
                    except Exception as exc:  # onnxruntime.quantization raises bare Exceptions
                        raise quantizer_failed(exc, self.name, fix) from exc
                    work = onnx.load(str(out_path))
            try:
                quantizer = MatMulNBitsQuantizer(
                    work,
                    bits=self.config.bits,
                    block_size=self.config.block_size,
                    is_symmetric=self.config.symmetric,
                    accuracy_level=self.config.accuracy_level,
                    nodes_to_include=targets,
                    op_types_to_quantize=("MatMul",),
                )
                quantizer.process()
            except Exception as exc:  # onnxruntime.quantization raises bare Exceptions (and asserts)
                raise quantizer_failed(exc, self.name, fix) from exc
        out = quantizer.model.model
        details = {
            "quantized_nodes": sum(n.op_type == "MatMulNBits" for n in out.graph.node),
            "gather_tables_int8": len(tables),
            "bits": self.config.bits,
            "block_size": self.config.block_size,
            "symmetric": self.config.symmetric,
            "accuracy_level": self.config.accuracy_level,
            "gemm_rewritten_as_matmul": rewritten,
        }
        return PassOutput(out, details)


class QuantizeWeight8(QuantizeWeight4):
    """Store large constant MatMul weights in blockwise INT8 (``MatMulNBits``): near-float fidelity, 1/4 the size."""

    name: ClassVar[str] = "int8-weight"
    Config: ClassVar[type[QuantizeWeight4Config]] = QuantizeWeight8Config


def matmul_weights(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """Each MatMul (or Gemm) whose second input is a 2-D float32 initializer, by node name, with its shape."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer if t.data_type == 1 and len(t.dims) == _MATRIX}
    found = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type in {"MatMul", "Gemm"} and node.input[1] in shapes:
            rows, cols = shapes[node.input[1]]
            found[node.name or f"#{i}:{node.op_type}"] = (rows, cols)
    return found


def has_large_matmuls(model: onnx.ModelProto) -> bool:
    """Whether MatMul weights of at least ``LARGE_SIDE`` x ``LARGE_SIDE`` hold ``LARGE_SHARE`` of the parameters."""
    floats = sum(int(math.prod(t.dims)) for t in model.graph.initializer if t.data_type == 1)
    large = sum(r * c for r, c in matmul_weights(model).values() if min(r, c) >= LARGE_SIDE)
    return floats > 0 and large >= LARGE_SHARE * floats
