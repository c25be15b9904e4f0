"""FP16: weights and compute in half precision, float32 inputs and outputs kept.

Halves the file. Whether it is faster depends on the device: ARMv8.2+ cores and GPUs run FP16
natively; on x86 CPUs ONNX Runtime inserts casts and FP16 is often *slower* — the report's
latency column says which.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edgekit.errors import PassError
from edgekit.graph_stats import weight_stats
from edgekit.passes.base import PassConfig, PassContext, PassOutput

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class Fp16Config(PassConfig):
    """Options of :class:`ConvertFp16`."""

    #: keep float32 graph inputs and outputs (casts at the edges) so callers need no change
    keep_io_types: bool = True
    #: op types left in float32 (added to onnxconverter-common's default block list)
    op_block_list: tuple[str, ...] = ()


class ConvertFp16:
    """Convert float32 weights and ops to float16 with onnxconverter-common."""

    name: ClassVar[str] = "fp16"
    Config = Fp16Config

    def __init__(self, config: Fp16Config | None = None) -> None:
        """Keep the config."""
        self.config = config or Fp16Config()

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:  # noqa: ARG002
        """Return the float16 model."""
        from onnxconverter_common import float16

        if weight_stats(model).bytes_by_dtype.get("float32", 0) == 0:
            raise PassError("nothing to convert: the model has no float32 weights", pass_name=self.name)
        block = list(float16.DEFAULT_OP_BLOCK_LIST) + list(self.config.op_block_list)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = float16.convert_float_to_float16(
                    model, keep_io_types=self.config.keep_io_types, op_block_list=block, disable_shape_infer=False
                )
        except Exception as exc:  # onnxconverter-common raises bare Exceptions
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PassError(
                f"float16 conversion failed ({first}): use --mode int8-static", pass_name=self.name
            ) from exc
        clamped = sum("truncated" in str(w.message) for w in caught)
        notes = [f"{clamped} weight value(s) outside float16's range were clamped"] if clamped else []
        return PassOutput(out, {"keep_io_types": self.config.keep_io_types, "values_clamped": clamped}, notes)
