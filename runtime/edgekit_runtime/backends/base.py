"""What every backend shares: the settings an engine runs with, the :class:`Backend` interface, import errors.

A module of its own so that the backend modules (:mod:`~edgekit_runtime.backends.onnxruntime`,
:mod:`~edgekit_runtime.backends.litert`) need nothing from the package that picks between them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edgekit_runtime.errors import ConfigError, MissingBackendError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from edgekit_runtime.specs import TensorSpec


@dataclass(frozen=True)
class BackendSettings:
    """How to run the engine."""

    #: intra-op threads (``None``: the engine's default, all cores)
    threads: int | None = None
    #: ONNX Runtime execution providers, all required, in order (``--providers``; ``None``: see ``prefer``)
    providers: tuple[str, ...] | None = None
    #: providers to use where this onnxruntime build has them, best first, the CPU the fallback (a target's;
    #: ``None``: the best available, see :func:`edgekit_runtime.backends.onnxruntime.best_providers`)
    prefer: tuple[str, ...] | None = None
    #: options by provider name, e.g. TensorRT's engine cache (:func:`tensorrt_options`)
    provider_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: leave ONNX Runtime's usage telemetry on (off by default on devices)
    ort_telemetry: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


def tensorrt_options(cache_dir: Path) -> dict[str, dict[str, str]]:
    """TensorRT's options: its engines and timing cache kept in ``cache_dir``.

    Building a TensorRT engine takes seconds to minutes on a Jetson; without the cache every start (and every
    deploy's trial load) builds it again. Cached engines are named by the model's hash, so a new bundle gets its
    own; onnxruntime's docs say engines must be rebuilt when TensorRT changes, so empty the folder after a
    JetPack upgrade (examples/jetson/README.md).
    """
    path = str(cache_dir)
    return {
        "TensorrtExecutionProvider": {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": path,
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": path,
        }
    }


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
