"""The runtime's error tree, the twin of ``edgekit.errors``.

The device never imports the host toolkit, so the runtime has its own::

RuntimeKitError
├── ConfigError      bad runtime settings (exit 2)
├── BundleError      a bundle that cannot be opened or trusted (exit 3)
│   └── SignatureError
├── ModelError       a model the backend cannot load or run (exit 3)
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


class BundleError(RuntimeKitError):
    """A bundle that cannot be opened, or fails verification."""

    exit_code = 3


class SignatureError(BundleError):
    """A signature that is missing, malformed or made by an untrusted key."""


class ModelError(RuntimeKitError):
    """A model the backend cannot load or run."""

    exit_code = 3


class TelemetryError(RuntimeKitError):
    """Telemetry that cannot be stored or sent."""
