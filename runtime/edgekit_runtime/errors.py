"""The runtime's error tree, the twin of ``edgekit.errors``.

The device never imports the host toolkit, so the runtime has its own::

RuntimeKitError
├── ConfigError      bad runtime settings (exit 2)
│   └── MissingBackendError  the engine a bundle needs is not installed
├── BundleError      a bundle that cannot be opened or trusted (exit 3)
│   ├── SignatureError
│   └── UnsafeModelError  a model that reaches outside its bundle (external data, custom ops, …)
├── ModelError       a model the backend cannot load or run (exit 3)
│   └── SelfTestError  the model loads but does not give its golden outputs (exit 3)
├── InvalidInputError  a request that does not fit the model's schema (HTTP 400)
├── TelemetryError   telemetry that cannot be stored or sent
└── CommandError     a fleet command the device refuses: unsigned, untrusted, stale, replayed, malformed
"""

from __future__ import annotations


class RuntimeKitError(Exception):
    """Base of every error the runtime raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        """Keep the one-line message."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """Return the one-line message."""
        return self.message


class ConfigError(RuntimeKitError):
    """A runtime setting that cannot work."""

    exit_code = 2


class MissingBackendError(ConfigError):
    """The inference engine a model needs is not installed."""

    def __init__(self, what: str, extra: str, package: str) -> None:
        """Say which extra installs it."""
        super().__init__(f"{what} need {package}: pip install 'edgekit-runtime[{extra}]'")
        self.package = package


class BundleError(RuntimeKitError):
    """A bundle that cannot be opened, or fails verification."""

    exit_code = 3


class SignatureError(BundleError):
    """A signature that is missing, malformed or made by an untrusted key."""


class UnsafeModelError(BundleError):
    """A model that can reach outside its bundle, or that cannot be checked; refused before any engine loads it."""

    def __init__(self, message: str, *, source: str, reason: str) -> None:
        """Record the model and why it was refused.

        ``reason`` is one of ``external-data``, ``custom-op``, ``session-config``, ``ep-context-file``,
        ``ort-format``, ``external-buffer``, ``outside-file``, ``malformed``, ``too-large``, ``unknown-backend``.
        """
        super().__init__(message)
        self.source = source
        self.reason = reason


class ModelError(RuntimeKitError):
    """A model the backend cannot load or run."""

    exit_code = 3


class SelfTestError(ModelError):
    """A model that loads but does not answer its golden inputs as it did on the host."""


class InvalidInputError(RuntimeKitError):
    """Inputs that do not fit the model: wrong names, dtypes, shapes or sizes. Servers answer 400."""

    exit_code = 2

    def __init__(self, message: str, *, input_name: str | None = None) -> None:
        """Record which input is wrong, when one is."""
        super().__init__(message)
        self.input_name = input_name


class TelemetryError(RuntimeKitError):
    """Telemetry that cannot be stored or sent."""


class CommandError(RuntimeKitError):
    """A fleet command the device will not run; ``command_id`` when the command named one (for its event)."""

    def __init__(self, message: str, *, command_id: str | None = None) -> None:
        """Keep the command's id, when it has one, so the refusal can be reported against it."""
        super().__init__(message)
        self.command_id = command_id
