"""Running a model in ONNX Runtime on the CPU with a fixed thread count: the seam every measurement uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence


class OrtRunner:
    """An ONNX Runtime CPU session configured like the target device (threads, sequential)."""

    def __init__(self, model_bytes: bytes, *, threads: int, label: str = "model") -> None:
        """Create the session, mapping ORT's load errors to :class:`ModelError`."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own non-exported exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(
                f"ONNX Runtime cannot load the {label} ({first}): check the model's ops and opset"
            ) from exc
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference call."""
        return list(self.session.run(self.output_names, feeds))

    def run_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Run every batch and join the outputs along the sample axis."""
        parts = [self.run(feeds) for feeds in batches]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]
