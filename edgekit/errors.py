"""The host toolkit's branches of the one error tree, which :mod:`edgekit_runtime.errors` defines.

The root and the classes host and device share are the runtime's, re-exported here so that
``from edgekit.errors import ConfigError`` is the same class the device raises; this module adds only the
host's own subclasses (marked *host*; the runtime's docstring draws the whole tree)::

    EdgekitError                       exit 1 unless a subclass says otherwise
    ├── ConfigError                    (exit 2)
    │   ├── MissingBackendError
    │   └── MissingExtraError    host  an optional dependency is not installed
    ├── DataError                host  calibration / evaluation data that does not fit the model (exit 2)
    ├── BundleError                    (exit 3)
    │   ├── SignatureError
    │   ├── UnsafeModelError
    │   └── BundleCheckError     host  a bundle the host's own check refuses (exit 1)
    ├── ModelError                     (exit 3)
    │   ├── SelfTestError
    │   ├── EngineError          host  ONNX Runtime cannot load or run a model the host made or measures
    │   └── TFLiteConversionError host ops, attributes or shapes the TFLite writer cannot express
    ├── PassError                host  a compression pass failed on a valid model (exit 4)
    ├── InvalidInputError              (exit 2)
    ├── HttpError
    ├── TelemetryError
    ├── CommandError
    └── FleetError               host  a broker that cannot be reached, devices that do not answer
        └── RolloutAbortedError  host  a staged rollout stopped by its canary (exit 5)

The CLI catches :class:`EdgekitError` alone (``edgekit.cli.output.user_errors``) and turns it into a
one-line message and its exit code. Messages name the problem and the fix in one line:
``"<what is wrong>: <what to do>"``. Errors from dependencies are wrapped with ``raise ... from exc`` so
the cause stays visible to a debugger (``EDGEKIT_DEBUG=1`` makes the CLI print it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit_runtime.errors import (
    BundleError,
    CommandError,
    ConfigError,
    EdgekitError,
    InvalidInputError,
    MissingBackendError,
    ModelError,
    SelfTestError,
    SignatureError,
    TelemetryError,
    UnsafeModelError,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BundleCheckError",
    "BundleError",
    "CommandError",
    "ConfigError",
    "DataError",
    "EdgekitError",
    "EngineError",
    "FleetError",
    "InvalidInputError",
    "MissingBackendError",
    "MissingExtraError",
    "ModelError",
    "PassError",
    "RolloutAbortedError",
    "SelfTestError",
    "SignatureError",
    "TFLiteConversionError",
    "TelemetryError",
    "UnsafeModelError",
]


class MissingExtraError(ConfigError):
    """An optional dependency is needed for what was asked and is not installed."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        """Say which feature needs which extra."""
        super().__init__(f"{feature} needs {package}: pip install 'edgekit[{extra}]'")
        self.feature = feature
        self.extra = extra
        self.package = package


class DataError(EdgekitError):
    """Calibration or evaluation data that is missing, unreadable or does not fit the model."""

    exit_code = 2

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        """Record the data file the problem is in, when there is one."""
        super().__init__(message)
        self.path = path


class BundleCheckError(BundleError):
    """A bundle the host's own check refuses: ``edgekit verify``, ``inspect`` and ``sign``, the check after packing.

    ``edgekit fleet deploy`` raises it for a path with no file. It exits 1, as a check that ran and answered
    "no" does (``sha256sum -c``), where a :class:`BundleError` passed through from the runtime exits 3, as a
    device refusing its input does. The runtime's error, when there is one, is its ``__cause__``.
    """

    exit_code = 1


class EngineError(ModelError):
    """A model the inference engine cannot load or run; ``reason`` is the engine's own first line."""

    def __init__(self, message: str, *, stage: str, reason: str) -> None:
        """Record the ``stage`` (``load`` or ``run``) and the engine's reason."""
        super().__init__(message)
        self.stage = stage
        self.reason = reason


class TFLiteConversionError(ModelError):
    """A valid ONNX model that the TFLite writer cannot convert; raised before anything is written."""

    def __init__(self, message: str, *, nodes: tuple[tuple[str, str], ...] = ()) -> None:
        """Record the ``(what, node name)`` pairs that stop the conversion."""
        super().__init__(message)
        self.nodes = nodes


class PassError(EdgekitError):
    """A compression pass failed on a model that loaded and validated."""

    exit_code = 4

    def __init__(self, message: str, *, pass_name: str) -> None:
        """Record which pass failed."""
        super().__init__(f"{pass_name}: {message}")
        self.pass_name = pass_name


class FleetError(EdgekitError):
    """A fleet operation that could not be done: no broker, no devices, no answer in time."""


class RolloutAbortedError(FleetError):
    """A staged rollout stopped after its canary: the rest of the fleet was never sent the bundle."""

    exit_code = 5

    def __init__(self, message: str, *, rollout_id: str, devices: tuple[str, ...] = ()) -> None:
        """Record the rollout and the canary devices that made it stop."""
        super().__init__(message)
        self.rollout_id = rollout_id
        self.devices = devices
