"""Inference engines behind one small interface: ONNX Runtime for ``.onnx``, LiteRT for ``.tflite``.

Each backend module has ``open(data: bytes, settings: BackendSettings) -> Backend``; :func:`open_backend`
picks the module by the bundle's backend name and imports it only then, so a device needs only the engine
its bundle uses.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edgekit_runtime.errors import ConfigError, MissingBackendError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from edgekit_runtime.specs import TensorSpec

BACKENDS = ("onnxruntime", "litert")


@dataclass(frozen=True)
class BackendSettings:
    """How to run the engine."""

    #: intra-op threads (``None``: the engine's default, all cores)
    threads: int | None = None
    #: ONNX Runtime execution providers in order of preference (``None``: the best available, see
    #: :func:`edgekit_runtime.backends.onnxruntime.best_providers`)
    providers: tuple[str, ...] | None = None
    #: leave ONNX Runtime's usage telemetry on (off by default on devices)
    ort_telemetry: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


class Backend(Protocol):
    """A loaded model an engine runs."""

    name: str
    #: what the engine actually runs on, e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]``
    devices: list[str]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs as the engine sees them."""

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs as the engine sees them."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference call on checked inputs; outputs by name."""


def import_failed(module: str, package: str, exc: ImportError, *, what: str, extra: str) -> ConfigError:
    """Why ``import module`` failed: not installed (say how to install it), or installed and broken (say so).

    An engine that is there but cannot load (a native library that does not map under a memory cap, a NumPy it
    was not built for) must not be reported as missing: reinstalling it would change nothing.
    """
    try:
        installed = importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return MissingBackendError(what, extra, package)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ConfigError(f"{package} is installed but cannot be imported ({first}): run edgekit-runtime doctor")


def open_backend(name: str, data: bytes, settings: BackendSettings) -> Backend:
    """Load ``data`` in the engine called ``name``."""
    if name == "onnxruntime":
        from edgekit_runtime.backends import onnxruntime  # noqa: PLC0415

        return onnxruntime.open_model(data, settings)
    if name == "litert":
        from edgekit_runtime.backends import litert  # noqa: PLC0415

        return litert.open_model(data, settings)
    raise ConfigError(f"backend '{name}' is unknown: this runtime has {', '.join(BACKENDS)}")
