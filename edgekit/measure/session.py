"""Running a model in ONNX Runtime on the CPU with a fixed thread count: the seam every measurement uses.

The session is made with the runtime's own set-up (:func:`edgekit_runtime.backends.onnxruntime.session_setup`:
the same session options, threads and telemetry opt-out a device's ``open_backend`` uses) on the CPU provider,
so what compress measures is the session a CPU device serves with. Calls go straight to the session, as before:
nothing is added to the timed path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import EngineError
from edgekit_runtime.backends.base import BackendSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

#: the host measures on the CPU, whatever providers this onnxruntime build has
CPU_PROVIDERS = ("CPUExecutionProvider",)


class OrtRunner:
    """An ONNX Runtime CPU session configured like the target device (threads, sequential)."""

    def __init__(self, model_bytes: bytes, *, threads: int, label: str = "model") -> None:
        """Create the session, mapping ORT's load errors to :class:`ModelError`."""
        from edgekit_runtime.backends.onnxruntime import session_setup

        setup = session_setup(BackendSettings(threads=threads, providers=CPU_PROVIDERS))
        try:
            self.session = setup.new_session(model_bytes)
        except Exception as exc:  # ORT raises its own non-exported exception types
            first = _first_line(exc)
            msg = f"ONNX Runtime cannot load the {label} ({first}): check the model's ops and opset"
            raise EngineError(msg, stage="load", reason=first) from exc
        self.label = label
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference call."""
        return list(self.session.run(self.output_names, feeds))

    def run_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Run every batch and join the outputs along the sample axis."""
        try:
            parts = [self.run(feeds) for feeds in batches]
        except Exception as exc:  # ORT raises its own non-exported exception types
            first = _first_line(exc)
            msg = f"ONNX Runtime cannot run the {self.label} ({first}): check the model's ops and input shapes"
            raise EngineError(msg, stage="run", reason=first) from exc
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]


def _first_line(exc: Exception) -> str:
    """The engine's message, one line, without ORT's ``[ONNXRuntimeError] : 1 : FAIL :`` prefix or a final stop."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", first).rstrip(".") or type(exc).__name__
