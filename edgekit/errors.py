"""The one error tree of the host toolkit.

Every error edgekit raises on purpose is an :class:`EdgekitError`; the CLI turns them into a
one-line message and a non-zero exit code, and nothing else does::

    EdgekitError                 exit 1 unless a subclass says otherwise
    ├── ConfigError              bad option values or combinations (exit 2)
    │   └── MissingExtraError    an optional dependency is not installed
    ├── DataError                calibration / evaluation data that does not fit the model (exit 2)
    ├── ModelError               the model file cannot be read, or is not what it must be (exit 3)
    │   └── TFLiteConversionError     ops, attributes or shapes the TFLite writer cannot express
    ├── PassError                a compression pass failed on a valid model (exit 4)
    ├── BundleError              a bundle cannot be written or read
    │   └── SignatureError       a signature is missing or does not verify
    ├── TelemetryError           telemetry could not be stored or sent
    └── FleetError               a broker that cannot be reached, devices that do not answer
        └── RolloutAbortedError       a staged rollout stopped by its canary (exit 5)

Messages name the problem and the fix in one line: ``"<what is wrong>: <what to do>"``.
Errors from dependencies are wrapped with ``raise ... from exc`` so the cause stays visible
to a debugger (``EDGEKIT_DEBUG=1`` makes the CLI print it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        """Keep the one-line message; subclasses add structured fields."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """Return the one-line message."""
        return self.message


class ConfigError(EdgekitError):
    """An option value, or a combination of options, that cannot work."""

    exit_code = 2


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


class ModelError(EdgekitError):
    """A model file that cannot be read, or is not a model edgekit can work on."""

    exit_code = 3

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        """Record the model file the problem is in, when there is one."""
        super().__init__(message)
        self.path = path


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


class BundleError(EdgekitError):
    """A bundle that cannot be written or read."""


class SignatureError(BundleError):
    """A bundle signature that is missing, malformed, or made by an untrusted key."""


class TelemetryError(EdgekitError):
    """Telemetry that cannot be stored or sent."""


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
