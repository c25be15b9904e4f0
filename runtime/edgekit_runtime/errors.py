"""The runtime's error tree, the twin of ``edgekit.errors``.

The device never imports the host toolkit, so the runtime has its own::

RuntimeKitError
├── ConfigError      bad runtime settings (exit 2)
│   └── MissingBackendError  the engine a bundle needs is not installed
├── BundleError      a bundle that cannot be opened or trusted (exit 3)
│   └── SignatureError
├── ModelError       a model the backend cannot load or run (exit 3)
│   └── SelfTestError  the model loads but does not give its golden outputs (exit 3)
├── InvalidInputError  a request that does not fit the model's schema (HTTP 400)
└── TelemetryError   telemetry that cannot be stored or sent
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
