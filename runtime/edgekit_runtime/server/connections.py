"""Connection limits: an idle timeout from the first byte, a request-head timeout and size cap, a connection cap.

uvicorn gives its httptools connections two limits, and neither holds off a client that opens connections
and then sends little or nothing: ``timeout_keep_alive`` is armed only after a response, so a connection that
never sends a whole request stays open for ever, and ``limit_concurrency`` answers 503 only once a request
head has arrived. httptools also gathers a header value with ``bytes +=`` until its line ends, so one endless
header grows the process without bound. :class:`GuardedHttp` is uvicorn's httptools protocol with what is
missing, added around the parser callbacks it already has:

- **idle timeout**: uvicorn's keep-alive timer is armed when a connection opens, not only after a response;
- **head timeout**: once bytes of a request head (or anything but a request) arrive, the whole head must be
  in within ``header_timeout``, or the client gets a 408 and the connection closes. The timer is armed only
  when a read leaves a head incomplete, so a request that arrives in one read costs nothing;
- **head size**: past ``max_head_bytes`` read without the parser reaching a head's end or body data (a long
  head, a flood of blank lines, endless chunk trailers), the client gets a 431 and the connection closes;
- **connection cap**: :class:`Connections` counts open connections; past ``max_connections`` a new one closes
  the connection that has been idle longest (one with no request in progress: waiting for a request, or
  still sending its head), and if every connection is busy with a request the new one is closed at once,
  before anything is read or written.

A stalled body is the application's to time out (:func:`~edgekit_runtime.server.asgi.read_body`, 408).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    import asyncio

    from uvicorn.server import ServerState

    from edgekit_runtime.server.metrics import ServerMetrics

#: the longest request head (request line and headers) accepted, as nginx's default large_client_header_buffers
MAX_HEAD_BYTES = 64 << 10
#: why connections are closed, as ``edgekit_connections_closed_total`` labels them
REASONS = ("idle", "header_timeout", "head_too_large", "evicted", "refused")


class HeadTooLarge(Exception):  # noqa: N818  (a signal to stop the parser, not an error to report)
    """Raised in a parser callback to stop parsing a head over the limit."""


@dataclass(frozen=True)
class ConnectionLimits:
    """What a connection may take: checked by :class:`~edgekit_runtime.server.settings.ServerSettings`."""

    idle_timeout: float
    header_timeout: float
    max_connections: int
    max_head_bytes: int = MAX_HEAD_BYTES


class Connections:
    """The server's open connections and which of them are idle, oldest first (what the cap closes)."""

    def __init__(self, limits: ConnectionLimits, metrics: ServerMetrics | None = None) -> None:
        """Start with none open."""
        self.limits = limits
        self.metrics = metrics
        self.open: set[GuardedHttp] = set()
        #: connections with no request in progress, in the order they became so (a dict keeps that order)
        self.idle: dict[GuardedHttp, None] = {}

    def admit(self, connection: GuardedHttp) -> bool:
        """Count a new connection in, closing the longest-idle one to make room; ``False``: all are busy."""
        if len(self.open) >= self.limits.max_connections:
            if not self.idle:
                self.closed("refused")
                return False
            oldest = next(iter(self.idle))
            self.forget(oldest)
            self.closed("evicted")
            oldest.transport.close()
        self.open.add(connection)
        self.idle[connection] = None
        return True

    def busy(self, connection: GuardedHttp) -> None:
        """A request is in progress on ``connection``: it is not idle."""
        self.idle.pop(connection, None)

    def idle_again(self, connection: GuardedHttp) -> None:
        """``connection`` answered its requests and waits for the next: it is the newest idle one."""
        if connection in self.open:
            self.idle.pop(connection, None)
            self.idle[connection] = None

    def forget(self, connection: GuardedHttp) -> None:
        """``connection`` is closed (or closing): it no longer counts."""
        self.open.discard(connection)
        self.idle.pop(connection, None)

    def closed(self, reason: str) -> None:
        """Count a connection these limits closed."""
        if self.metrics is not None:
            self.metrics.connections_closed.inc((reason,))


class GuardedConfig(uvicorn.Config):
    """uvicorn's settings, serving HTTP with :class:`GuardedHttp` under ``connections``' limits."""

    def __init__(self, app: Any, *, connections: Connections, **kwargs: Any) -> None:  # noqa: ANN401  (uvicorn's)
        """``kwargs`` are uvicorn's; ``http`` is always :class:`GuardedHttp`."""
        super().__init__(app, http=GuardedHttp, **kwargs)
        self.connections = connections


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools connection with an idle timer from the start, a head timer and size cap, and the cap."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Read the limits from ``config``, a :class:`GuardedConfig`."""
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, GuardedConfig):
            raise TypeError("GuardedHttp needs a GuardedConfig: it carries the connection limits")
        self.guard = config.connections
        self.limits = config.connections.limits
        self.timeout_keep_alive = self.limits.idle_timeout  # type: ignore[assignment]  # uvicorn types it int
        self._head_timer: asyncio.TimerHandle | None = None
        #: bytes read since the parser last reached a head's end, body data or a message's end
        self._unparsed = 0
        #: no request in progress: the next bytes are (or should be) a request head
        self._awaiting_head = True
        #: a request head has begun and not yet ended
        self._in_head = False
        self._heads = 0
        #: the answer the parser's refusal gets instead of uvicorn's 400
        self._refusal: tuple[int, str, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection in (or close it at once), and start its idle timer."""
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.close()
            return
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop counting it; stop its timers."""
        self.guard.forget(self)
        self._stop_head_timer()
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data``; then enforce the head's size, and time a head that is still incomplete."""
        self._unparsed += len(data)
        awaiting, heads = self._awaiting_head, self._heads
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._unparsed > self.limits.max_head_bytes:
            self._refuse(431, "head_too_large", self._too_large())
            return
        # a head begun and not ended, or bytes that began no request at all (blank lines): time the head
        started_nothing = awaiting and heads == self._heads and self._awaiting_head
        if self._head_timer is None and (self._in_head or started_nothing):
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def on_message_begin(self) -> None:
        """A request head begins."""
        self._in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head is in: stop its timer; the connection is busy until the response is sent.

        A head that came in one read with more besides may be over the limit unseen: it is measured here.
        """
        if self._unparsed > self.limits.max_head_bytes and self._head_size() > self.limits.max_head_bytes:
            self._refusal = (431, "head_too_large", self._too_large())
            raise HeadTooLarge  # httptools stops parsing, and uvicorn answers through send_400_response
        self._in_head = self._awaiting_head = False
        self._heads += 1
        self._unparsed = 0
        self._stop_head_timer()
        self.guard.busy(self)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Body data: the parser is making progress."""
        self._unparsed = 0
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The request is read: the next bytes begin another head."""
        self._unparsed = 0
        self._awaiting_head = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """The response is sent: idle again, unless a pipelined request is next."""
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # uvicorn armed the idle timer: nothing else to answer
            self.guard.idle_again(self)

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser refused: uvicorn's 400, or a 431 for a head over the limit."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
            return
        super().send_400_response(msg)

    def _head_size(self) -> int:
        """The request head's bytes, near enough: the target, each header line, the request line's rest."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16

    def _too_large(self) -> str:
        return f"request head over {self.limits.max_head_bytes} bytes: send shorter headers and URL"

    def timeout_keep_alive_handler(self) -> None:
        """No request began within ``idle_timeout``: close the connection."""
        if not self.transport.is_closing():
            self.guard.closed("idle")
            self.guard.forget(self)
        super().timeout_keep_alive_handler()

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.flow.read_paused:  # the server is not reading (a pipelined body it has yet to take): not the client
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)
            return
        self._refuse(
            408,
            "header_timeout",
            f"request head not complete within {self.limits.header_timeout:g} s: send the whole head at once",
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer ``status`` with ``message`` (unless a response is under way) and close the connection."""
        if self.transport.is_closing():
            return
        self.guard.closed(reason)
        self.guard.forget(self)
        self._stop_head_timer()
        if self.cycle is None or self.cycle.response_complete:
            body = orjson.dumps({"error": message})
            phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
            )
        self.transport.close()
