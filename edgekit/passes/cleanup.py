"""Graph clean-up before compression: constant folding, dead-node removal, standard fusions.

Two engines, chosen by measurement (``tools/bench_cleanup.py``, figures in
``docs/compress.md``):

- ``onnxslim`` (the default): folds constants and fuses into *standard* ONNX ops, so the result
  still runs on any ONNX runtime and converts to TFLite;
- ``ort-basic``: ONNX Runtime's offline optimizer at the basic level (no hardware-specific
  fused ops, which would tie the file to one build of ORT).

``none`` keeps the graph as it is.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from edgekit.errors import PassError
from edgekit.graph_stats import graph_inputs, graph_outputs
from edgekit.passes.base import PassConfig, PassContext, PassOutput

if TYPE_CHECKING:
    import onnx

CleanupMethod = Literal["onnxslim", "ort-basic", "none"]
CLEANUP_METHODS: tuple[CleanupMethod, ...] = ("onnxslim", "ort-basic", "none")


@dataclass(frozen=True)
class CleanupConfig(PassConfig):
    """Options of :class:`Cleanup`."""

    #: which optimizer rewrites the graph
    method: CleanupMethod = "onnxslim"


class Cleanup:
    """Simplify the graph without changing what it computes."""

    name: ClassVar[str] = "cleanup"
    Config = CleanupConfig

    def __init__(self, config: CleanupConfig | None = None) -> None:
        """Keep the config."""
        self.config = config or CleanupConfig()

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:
        """Return the simplified model; inputs and outputs keep their names and types."""
        method = self.config.method
        if method == "none":
            return PassOutput(model, {"method": "none"})
        try:
            out = _onnxslim(model) if method == "onnxslim" else _ort_basic(model, ctx.workdir)
        except Exception as exc:  # third-party optimizers raise anything
            msg = f"{method} failed ({type(exc).__name__}: {exc}): retry with --cleanup none"
            raise PassError(msg, pass_name=self.name) from exc
        if graph_inputs(out) != graph_inputs(model) or [o.name for o in graph_outputs(out)] != [
            o.name for o in graph_outputs(model)
        ]:
            # keep the model's interface stable: a clean-up that renames I/O is a bug we refuse
            return PassOutput(model, {"method": method}, [f"{method} changed the model's inputs/outputs; skipped"])
        return PassOutput(out, {"method": method})


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    with contextlib.redirect_stdout(io.StringIO()):  # onnxslim prints a summary table
        result: onnx.ModelProto = onnxslim.slim(model)
    return result


def _ort_basic(model: onnx.ModelProto, workdir: Path) -> onnx.ModelProto:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out_path = Path(tmp) / "basic.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(out_path)
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(str(out_path))
