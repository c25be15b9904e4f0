"""Inference engines behind one small interface: ONNX Runtime for ``.onnx``, LiteRT for ``.tflite``.

Each backend module has ``open_model(data: bytes, settings: BackendSettings, *, source: str) -> Backend``;
:func:`open_backend` picks the module by the bundle's backend name and imports it only then, so a device needs
only the engine its bundle uses. Each ``open_model`` runs :func:`edgekit_runtime.confinement.check_confined` on
the bytes before it makes a session or interpreter: this package is the only place the runtime makes them, so
no model reaches an engine unchecked. What the backends share (the settings, the :class:`Backend` interface)
is in :mod:`edgekit_runtime.backends.base`, and importable from here.
"""

from __future__ import annotations

from edgekit_runtime.backends.base import Backend, BackendSettings, import_failed, tensorrt_options
from edgekit_runtime.errors import ConfigError

__all__ = ["BACKENDS", "Backend", "BackendSettings", "import_failed", "open_backend", "tensorrt_options"]

BACKENDS = ("onnxruntime", "litert")


def open_backend(name: str, data: bytes, settings: BackendSettings, *, source: str = "model") -> Backend:
    """Load ``data`` (named ``source`` in errors) in the engine called ``name``, once it is checked confined."""
    if name == "onnxruntime":
        from edgekit_runtime.backends import onnxruntime

        return onnxruntime.open_model(data, settings, source=source)
    if name == "litert":
        from edgekit_runtime.backends import litert

        return litert.open_model(data, settings, source=source)
    raise ConfigError(f"backend '{name}' is unknown: this runtime has {', '.join(BACKENDS)}")
