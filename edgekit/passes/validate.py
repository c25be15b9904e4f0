"""Validate a model and put it in the form the other passes need.

- ``onnx.checker`` must accept it;
- weights stored as ``Constant`` nodes become initializers (real exporters, PaddlePaddle's
  among them, ship models that way and ``onnxruntime.quantization`` quantizes only
  initializers);
- shapes are inferred, so later passes and the report see every tensor's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edgekit.errors import ModelError
from edgekit.graph_stats import constant_tensor
from edgekit.passes.base import PassConfig, PassContext, PassOutput

if TYPE_CHECKING:
    import onnx

_DEFAULT_DOMAINS = {"", "ai.onnx"}


@dataclass(frozen=True)
class ValidateConfig(PassConfig):
    """Options of :class:`Validate`."""

    #: turn tensor-valued ``Constant`` nodes into initializers
    constants_to_initializers: bool = True
    #: run ONNX shape inference (failures become a warning: custom ops may have no shape function)
    infer_shapes: bool = True


class Validate:
    """Check the model, lift constant weights into initializers, infer shapes."""

    name: ClassVar[str] = "validate"
    Config = ValidateConfig

    def __init__(self, config: ValidateConfig | None = None) -> None:
        """Keep the config."""
        self.config = config or ValidateConfig()

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:  # noqa: ARG002
        """Return a checked copy of ``model``."""
        import onnx

        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelError(f"onnx.checker rejects the model ({first}): fix the exporter's output") from exc
        out = onnx.ModelProto()
        out.CopyFrom(model)
        details: dict[str, object] = {}
        warnings: list[str] = []
        if self.config.constants_to_initializers:
            details["constants_lifted"] = lift_constants(out.graph)
        if self.config.infer_shapes:
            try:
                out = onnx.shape_inference.infer_shapes(out, strict_mode=False, data_prop=True)
            except (onnx.shape_inference.InferenceError, RuntimeError) as exc:
                warnings.append(f"shape inference failed, continuing without it: {str(exc).splitlines()[0]}")
        return PassOutput(out, details, warnings)


def lift_constants(graph: onnx.GraphProto) -> int:
    """Replace top-level ``Constant`` nodes by initializers, in place; return how many moved."""
    outputs = {o.name for o in graph.output}
    kept = []
    moved = 0
    for node in graph.node:
        tensor = None
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS and node.output[0] not in outputs:
            tensor = constant_tensor(node)
        if tensor is None:
            kept.append(node)
            continue
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        moved += 1
    if moved:
        del graph.node[:]
        graph.node.extend(kept)
    return moved
