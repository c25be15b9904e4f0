"""LiteRT (``ai-edge-litert``) for ``.tflite`` models, with XNNPACK and a thread setting.

``tflite-runtime`` is the fallback where LiteRT has no wheel (it stops at Python 3.11 and NumPy 1).
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit_runtime.backends.base import import_failed
from edgekit_runtime.confinement import check_confined
from edgekit_runtime.errors import ModelError
from edgekit_runtime.specs import TensorSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgekit_runtime.backends.base import BackendSettings


def _interpreter_class() -> Any:  # noqa: ANN401
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as litert:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            if importlib.util.find_spec("tflite_runtime") is None:  # report LiteRT's failure, the one preferred
                raise import_failed(
                    "ai_edge_litert", "ai-edge-litert", litert, what="TFLite models", extra="litert"
                ) from exc
            raise import_failed("tflite_runtime", "tflite-runtime", exc, what="TFLite models", extra="litert") from exc
    return Interpreter


class LiteRtBackend:
    """A LiteRT interpreter; one call at a time (interpreters are not thread-safe)."""

    name = "litert"

    def __init__(self, interpreter: Any) -> None:  # noqa: ANN401
        """Wrap an interpreter with allocated tensors."""
        self.interpreter = interpreter
        self.devices = ["cpu (XNNPACK)"]
        self._in = interpreter.get_input_details()
        self._out = interpreter.get_output_details()
        self._lock = threading.Lock()
        self._shapes = {d["index"]: tuple(d["shape"]) for d in self._in}

    @property
    def inputs(self) -> list[TensorSpec]:
        """Inputs; a ``-1`` in the signature is a free axis."""
        return [_spec(d) for d in self._in]

    @property
    def outputs(self) -> list[TensorSpec]:
        """Outputs."""
        return [_spec(d) for d in self._out]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Resize to the feed's shape when it changed, set, invoke, read."""
        with self._lock:
            try:
                for d in self._in:
                    value = np.ascontiguousarray(feeds[d["name"]], dtype=d["dtype"])
                    if value.shape != self._shapes[d["index"]]:
                        self.interpreter.resize_tensor_input(d["index"], value.shape)
                        self.interpreter.allocate_tensors()
                        self._shapes[d["index"]] = value.shape
                    self.interpreter.set_tensor(d["index"], value)
                self.interpreter.invoke()
                return {str(d["name"]): np.array(self.interpreter.get_tensor(d["index"])) for d in self._out}
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"LiteRT failed to run the model ({str(exc).strip().splitlines()[0]})") from exc


def _spec(d: dict[str, Any]) -> TensorSpec:
    dims = tuple(None if int(v) < 0 else int(v) for v in d.get("shape_signature", d["shape"]))
    return TensorSpec(str(d["name"]), np.dtype(d["dtype"]).name, dims)


def open_model(data: bytes, settings: BackendSettings, *, source: str = "model.tflite") -> LiteRtBackend:
    """Check the FlatBuffer is confined to itself, then load it; XNNPACK is LiteRT's default CPU delegate."""
    interpreter_class = _interpreter_class()  # a missing engine says so whatever the model
    check_confined(data, "litert", source=source)
    try:
        interpreter = interpreter_class(model_content=data, num_threads=settings.threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"LiteRT cannot load the model ({str(exc).strip().splitlines()[0]}): rebuild the bundle"
        ) from exc
    return LiteRtBackend(interpreter)
