"""The one error tree of edgekit, host and device.

The device never imports the host toolkit, so the tree is defined here, once; the host toolkit
(``edgekit.errors``) re-exports these classes and hangs its own subclasses on them (marked *host*)::

    EdgekitError                       exit 1 unless a subclass says otherwise
    ├── ConfigError                    settings, options or their combinations that cannot work (exit 2)
    │   ├── MissingBackendError        the engine a bundle needs is not installed on the device
    │   └── MissingExtraError    host  an optional dependency of the host toolkit is not installed
    ├── DataError                host  calibration / evaluation data that does not fit the model (exit 2)
    ├── BundleError                    a bundle that cannot be opened or trusted (exit 3)
    │   ├── SignatureError             a signature that is missing, malformed or made by an untrusted key
    │   ├── UnsafeModelError           a model that reaches outside its bundle (external data, custom ops, …)
    │   └── BundleCheckError     host  a bundle the host's own check refuses: verify, inspect, sign, pack (exit 1)
    ├── ModelError                     a model that cannot be read, loaded or run (exit 3)
    │   ├── SelfTestError              the model loads but does not give its golden outputs
    │   ├── EngineError          host  ONNX Runtime cannot load or run a model the host made or measures
    │   └── TFLiteConversionError host ops, attributes or shapes the TFLite writer cannot express
    ├── PassError                host  a compression pass failed on a valid model (exit 4)
    ├── InvalidInputError              inputs that do not fit the model's schema (exit 2; servers answer 400)
    ├── HttpError                      a request the server refuses, with the HTTP status to answer
    ├── TelemetryError                 telemetry that cannot be stored, sent or parsed
    ├── CommandError                   a fleet command the device refuses: unsigned, untrusted, stale, replayed, …
    ├── WorkerError                    a worker process of `serve --workers` that cannot start, answer or swap
    └── FleetError               host  a broker that cannot be reached, devices that do not answer
        └── RolloutAbortedError  host  a staged rollout stopped by its canary (exit 5)

A command line (``edgekit`` or ``edgekit-runtime``) catches :class:`EdgekitError` alone, prints its message
as one ``error:`` line and exits with its ``exit_code``; nothing else turns errors into exit codes.
Messages name the problem and the fix in one line: ``"<what is wrong>: <what to do>"``. Errors from
dependencies are wrapped with ``raise ... from exc``, and a layer that adds meaning (a label, the host's
extra to install) wraps with its own subclass ``from exc``; structured fields ride on the exception.

Outside the tree on purpose: :class:`edgekit_runtime.server.asgi.ClientGone`, the signal that a client hung
up mid-request. It is nobody's failure, so no ``except EdgekitError`` may answer it or log it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose, on the host and on the device."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        """Keep the one-line message; subclasses add structured fields."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """Return the one-line message."""
        return self.message


class ConfigError(EdgekitError):
    """A setting or option value, or a combination of them, that cannot work."""

    exit_code = 2


class MissingBackendError(ConfigError):
    """The inference engine a model needs is not installed."""

    def __init__(self, what: str, extra: str, package: str) -> None:
        """Say which extra installs it."""
        super().__init__(f"{what} need {package}: pip install 'edgekit-runtime[{extra}]'")
        self.package = package


class BundleError(EdgekitError):
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


class ModelError(EdgekitError):
    """A model file that cannot be read, or a model the backend cannot load or run."""

    exit_code = 3

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        """Record the model file the problem is in, when there is one."""
        super().__init__(message)
        self.path = path


class SelfTestError(ModelError):
    """A model that loads but does not answer its golden inputs as it did on the host."""


class InvalidInputError(EdgekitError):
    """Inputs that do not fit the model: wrong names, dtypes, shapes or sizes. Servers answer 400."""

    exit_code = 2

    def __init__(self, message: str, *, input_name: str | None = None) -> None:
        """Record which input is wrong, when one is."""
        super().__init__(message)
        self.input_name = input_name


class HttpError(EdgekitError):
    """A request the server refuses, with the status to answer and a one-line message.

    Raised at the HTTP edge (size, JSON, content type, path, method, memory budget); each protocol turns it
    into its own error body. It never reaches a command line.
    """

    def __init__(self, status: int, message: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Keep the status, the message and any headers the answer needs (``Allow`` for a 405)."""
        super().__init__(message)
        self.status = status
        self.headers = headers


class TelemetryError(EdgekitError):
    """Telemetry that cannot be stored or sent."""


class CommandError(EdgekitError):
    """A fleet command the device will not run; ``command_id`` when the command named one (for its event)."""

    def __init__(self, message: str, *, command_id: str | None = None) -> None:
        """Keep the command's id, when it has one, so the refusal can be reported against it."""
        super().__init__(message)
        self.command_id = command_id


class WorkerError(EdgekitError):
    """A worker process of ``serve --workers`` could not start, did not answer, refused, or is gone."""
