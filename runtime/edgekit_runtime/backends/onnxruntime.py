"""ONNX Runtime: TensorRT or CUDA where the build and the device have them (a Jetson), else the CPU.

ONNX Runtime's Linux wheels (1.2x and newer) have 1DS usage telemetry compiled in: left alone, the first
session writes a device id and an event database under ``~/.cache/Microsoft/DeveloperTools`` and queues
events for upload. The runtime sets ``ORT_DISABLE_TELEMETRY=1`` before it imports onnxruntime (the full
opt-out: nothing is created or sent) and calls ``disable_telemetry_events()`` as well, unless
``ort_telemetry`` is set. An onnxruntime imported earlier in the same process by someone else has already
decided (docs/runtime.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit_runtime.backends.base import import_failed
from edgekit_runtime.confinement import check_confined
from edgekit_runtime.errors import ConfigError, ModelError
from edgekit_runtime.specs import TensorSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from edgekit_runtime.backends.base import BackendSettings

#: most preferred first; the CPU provider is always there
PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
#: ONNX type strings → NumPy dtype names
_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _ort(*, telemetry: bool = False) -> Any:  # noqa: ANN401
    if not telemetry:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # read once, when ONNX Runtime initialises
    try:
        import onnxruntime
    except ImportError as exc:
        raise import_failed("onnxruntime", "onnxruntime", exc, what="ONNX models", extra="onnx") from exc
    return onnxruntime


def best_providers(available: list[str]) -> list[str]:
    """The available providers edgekit uses, best first (TensorRT, CUDA, then the CPU)."""
    return [p for p in PREFERENCE if p in available] or ["CPUExecutionProvider"]


def choose_providers(settings: BackendSettings, available: list[str]) -> list[str]:
    """The providers a session gets: all of ``--providers`` (or an error), else the preferred ones present."""
    if settings.providers:
        absent = [p for p in settings.providers if p not in available]
        if absent:
            raise ConfigError(
                f"execution provider {', '.join(absent)} is not in this onnxruntime build (it has "
                f"{', '.join(available)}): install the matching onnxruntime package, or drop --providers"
            )
        return list(settings.providers)
    if settings.prefer is None:
        return best_providers(available)
    chosen = [p for p in settings.prefer if p in available and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def _make_cache_dirs(settings: BackendSettings, providers: list[str]) -> None:
    """TensorRT writes its engine cache into a folder that must exist."""
    for provider in providers:
        folder = settings.provider_options.get(provider, {}).get("trt_engine_cache_path")
        if folder:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"TensorRT's engine cache {folder} cannot be made ({exc.strerror or exc}): give a writable "
                    "--state-dir"
                ) from None


class OrtBackend:
    """An ``InferenceSession`` with the spec of its inputs and outputs."""

    name = "onnxruntime"

    def __init__(self, session: Any) -> None:  # noqa: ANN401
        """Wrap a loaded session."""
        self.session = session
        self.devices: list[str] = list(session.get_providers())
        self._inputs = [_spec(i) for i in session.get_inputs()]
        self._outputs = [_spec(o) for o in session.get_outputs()]
        self._names = [o.name for o in self._outputs]
        self._strings = any(o.dtype == "string" for o in self._outputs)
        # On the CPU, call the session's C++ side directly: InferenceSession.run re-checks the input names
        # (done here already) and handles provider fallback (only for GPU providers), about 3 µs a call.
        cpu_only = self.devices == ["CPUExecutionProvider"]
        self._run = session._sess.run if cpu_only and hasattr(session, "_sess") else session.run  # noqa: SLF001

    @property
    def inputs(self) -> list[TensorSpec]:
        """The session's inputs."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The session's outputs."""
        return self._outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One ``session.run``; string outputs come back as NumPy text arrays."""
        try:
            values = self._run(self._names, feeds, None)
        except Exception as exc:  # ORT raises its own non-exported exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"ONNX Runtime failed to run the model ({first})") from exc
        if self._strings:
            values = [v.astype(str) if v.dtype == object else v for v in values]
        return dict(zip(self._names, values, strict=True))


def _spec(arg: Any) -> TensorSpec:  # noqa: ANN401
    shape = arg.shape
    dims = None if shape is None else tuple(d if isinstance(d, (int, str)) or d is None else None for d in shape)
    return TensorSpec(arg.name, _TYPES.get(arg.type, arg.type), dims)


@dataclass(frozen=True)
class SessionSetup:
    """What an ``InferenceSession`` is made with: the providers, their options and the session options.

    :func:`open_model` makes the device's sessions with it; the host's measurements
    (``edgekit.measure.session.OrtRunner``) make theirs with the same, so a figure measured there is for the
    session a device runs.
    """

    #: the ``onnxruntime`` module
    ort: Any
    #: ``onnxruntime.SessionOptions``: intra-op threads, one inter-op thread, warnings and errors logged only
    options: Any
    providers: list[str]
    provider_options: list[dict[str, str]]

    def new_session(self, data: bytes) -> Any:  # noqa: ANN401
        """A session for ``data``; it does not check the model is confined (:func:`open_model` does, first)."""
        return self.ort.InferenceSession(
            data, self.options, providers=self.providers, provider_options=self.provider_options
        )


def session_setup(settings: BackendSettings) -> SessionSetup:
    """Import onnxruntime (telemetry off unless asked), choose the providers, make their folders, set the options."""
    ort = _ort(telemetry=settings.ort_telemetry)
    if not settings.ort_telemetry:
        ort.disable_telemetry_events()
    providers = choose_providers(settings, list(ort.get_available_providers()))
    _make_cache_dirs(settings, providers)
    options = ort.SessionOptions()
    if settings.threads is not None:
        if settings.threads < 1:
            raise ConfigError(f"threads {settings.threads} is not a thread count: use 1 or more")
        options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return SessionSetup(ort, options, providers, [dict(settings.provider_options.get(p, {})) for p in providers])


def open_model(data: bytes, settings: BackendSettings, *, source: str = "model.onnx") -> OrtBackend:
    """Check the model is confined to its bytes, then create the session; threads and providers from ``settings``.

    A model that carries session settings (``ort_config``, applied when ``ORT_LOAD_CONFIG_FROM_MODEL=1``) is
    refused by the check: ONNX Runtime cannot be told to ignore them while that variable is set.
    """
    setup = session_setup(settings)
    check_confined(data, "onnxruntime", source=source)  # the line before the session: nothing unchecked gets one
    try:
        session = setup.new_session(data)
    except Exception as exc:  # ORT raises its own non-exported exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"ONNX Runtime cannot load the model ({first}): rebuild the bundle") from exc
    return OrtBackend(session)
