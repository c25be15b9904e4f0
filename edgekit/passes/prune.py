"""Magnitude pruning: zero the smallest weights of each Conv / MatMul / Gemm to a sparsity target.

Honest about what it buys: ONNX Runtime gets no speed from unstructured sparsity, and the file
on disk keeps its size (zeros take as many bytes as other values). What shrinks is the
*compressed* size: a bundle or an over-the-air update is zipped, and runs of zeros compress
well. The report shows the zipped size and the accuracy cost, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edgekit.errors import ConfigError, PassError
from edgekit.passes.base import PassConfig, PassContext, PassOutput
from edgekit.passes.quantize_common import WEIGHT_INPUT

if TYPE_CHECKING:
    import onnx

_PRUNABLE = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass(frozen=True)
class PruneConfig(PassConfig):
    """Options of :class:`PruneMagnitude`."""

    #: fraction of each weight tensor set to zero, in [0, 1)
    sparsity: float = 0.5
    #: tensors with fewer elements stay dense (biases, tiny layers: no gain, real cost)
    min_elements: int = 256


class PruneMagnitude:
    """Zero the smallest-magnitude weights of each prunable tensor."""

    name: ClassVar[str] = "prune"
    Config = PruneConfig

    def __init__(self, config: PruneConfig | None = None) -> None:
        """Check the sparsity now."""
        self.config = config or PruneConfig()
        if not 0.0 <= self.config.sparsity < 1.0:
            raise ConfigError(f"sparsity {self.config.sparsity} is out of range: use a fraction in [0, 1), e.g. 0.5")

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:  # noqa: ARG002
        """Return a copy with pruned weights."""
        import numpy as np
        import onnx
        from onnx import numpy_helper

        out = onnx.ModelProto()
        out.CopyFrom(model)
        weights = {
            node.input[WEIGHT_INPUT[node.op_type]]
            for node in out.graph.node
            if node.op_type in _PRUNABLE and len(node.input) > WEIGHT_INPUT[node.op_type]
        }
        pruned = zeroed = total = 0
        for i, tensor in enumerate(out.graph.initializer):
            if tensor.name not in weights or tensor.data_type != onnx.TensorProto.FLOAT:
                continue
            array = numpy_helper.to_array(tensor)
            if array.size < self.config.min_elements:
                continue
            k = int(array.size * self.config.sparsity)
            if k:
                flat = array.copy().reshape(-1)
                flat[np.argpartition(np.abs(flat), k - 1)[:k]] = 0.0
                out.graph.initializer[i].CopyFrom(numpy_helper.from_array(flat.reshape(array.shape), tensor.name))
            pruned += 1
            zeroed += k
            total += array.size
        if not pruned:
            msg = f"no float32 Conv/MatMul/Gemm weight with >= {self.config.min_elements} elements to prune"
            raise PassError(msg, pass_name=self.name)
        details = {"tensors_pruned": pruned, "sparsity_achieved": round(zeroed / total, 4), "weights": total}
        return PassOutput(out, details)
