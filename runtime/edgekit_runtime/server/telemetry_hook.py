"""What the server tells telemetry of each inference request: its seconds, its inputs and first output or error.

The infer callable is wrapped (:class:`Observed`) so that a request's inputs and outputs are kept in a
:class:`Seen` that :func:`watch` put in the request's own context; :func:`record` tells them to the
:class:`Recorder` once the request is answered.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from edgekit_runtime.contract.telemetry import ErrorKind
    from edgekit_runtime.server.inference import Feeds, Infer, Outputs

#: the status recorded for a client that hangs up before its answer (nginx's convention)
CLIENT_GONE = 499
#: the statuses with an error kind of their own (the kinds are the contract's, ``ErrorKind``); any other 4xx is
#: ``bad_request``, any 5xx ``server_error``
STATUS_KINDS: dict[int, ErrorKind] = {
    400: "invalid_input",
    408: "timeout",
    413: "too_large",
    CLIENT_GONE: "client_gone",
}


class Recorder(Protocol):
    """Where each inference request is told (:class:`edgekit_runtime.telemetry.service.Telemetry`)."""

    def record(
        self,
        seconds: float,
        *,
        inputs: Mapping[str, np.ndarray] | None = None,
        first_output: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """One inference request."""

    def status(self) -> Mapping[str, float]:
        """Numbers for ``/metrics``: outbox size, drops, broker connection."""


class Running(Recorder, Protocol):
    """A recorder the server starts and stops with itself."""

    def start(self) -> None:
        """Start keeping requests."""

    def stop(self) -> None:
        """Keep what is left: the server has answered its last request."""


class Seen:
    """What the model saw and said during one request (filled in by :class:`Observed`)."""

    __slots__ = ("feeds", "outputs")

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.feeds: Feeds | None = None
        self.outputs: Outputs | None = None


_SEEN: contextvars.ContextVar[Seen | None] = contextvars.ContextVar("edgekit_seen", default=None)


def watch() -> Seen:
    """Keep what the model sees and says during this request (its own task: the context goes with it)."""
    seen = Seen()
    _SEEN.set(seen)
    return seen


class Observed:
    """Wraps the infer callable: the request's inputs and outputs are kept for telemetry."""

    def __init__(self, inner: Infer) -> None:
        """Observe ``inner``."""
        self._inner = inner

    async def __call__(self, feeds: Feeds) -> Outputs:
        """``inner(feeds)``, kept in the request's :class:`Seen` if it has one."""
        outputs = await self._inner(feeds)
        seen = _SEEN.get()
        if seen is not None:
            seen.feeds, seen.outputs = feeds, outputs
        return outputs

    def close(self) -> None:
        """Close ``inner``."""
        self._inner.close()


def error_kind(status: int) -> ErrorKind | None:
    """The telemetry error kind of a response status (``None``: it succeeded)."""
    if status < 400:  # noqa: PLR2004
        return None
    return STATUS_KINDS.get(status) or ("server_error" if status >= 500 else "bad_request")  # noqa: PLR2004


def record(telemetry: Recorder, seconds: float, status: int, seen: Seen) -> None:
    """Tell ``telemetry`` of one answered inference request."""
    kind = error_kind(status)
    if kind is not None or seen.outputs is None:
        telemetry.record(seconds, error=kind or "server_error")
        return
    telemetry.record(seconds, inputs=seen.feeds, first_output=next(iter(seen.outputs.values()), None))
