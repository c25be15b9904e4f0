"""Run the application under uvicorn: our own listening socket, a ready line, a graceful stop.

The socket is made here, not by uvicorn, so that ``--port 0`` can report the port the kernel picked, and
so that a port already taken fails before the model is loaded. It has ``TCP_NODELAY`` set: Linux copies it
to every accepted connection, and asyncio and uvloop set it on each accepted TCP transport as well, so a
small response is never held back by Nagle's algorithm waiting for the client's delayed ACK
(tests/runtime/server/test_serve.py reads it back on the server's side of a live connection).

Connections are uvicorn's httptools protocol with the limits of :mod:`.connections` (idle and head timeouts,
a head size cap, a connection cap).

SIGTERM and SIGINT stop the server gracefully: uvicorn stops accepting, lets requests in flight finish
(up to ``graceful_timeout``), and returns. uvicorn then re-raises the signal into the handler that was in
place before it started; we install one that only asks the server to exit, so the process ends with 0
rather than being killed by its own re-raised signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ctypes
import os
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.connections import ConnectionLimits, Connections, GuardedConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

    from edgekit_runtime.model import Model
    from edgekit_runtime.server.app import App
    from edgekit_runtime.server.settings import ServerSettings
    from edgekit_runtime.server.telemetry_hook import Running
    from edgekit_runtime.server.workers import WorkerPool


#: glibc's ``mallopt`` parameter for the trim threshold, and the threshold the server sets
_M_TRIM_THRESHOLD = -1
TRIM_THRESHOLD = 1 << 20


def trim_freed_memory() -> None:
    """Have glibc give freed heap memory back to the system past 1 MiB, as ``MALLOC_TRIM_THRESHOLD_`` does.

    Left alone, glibc raises its mmap and trim thresholds each time a large block is freed, so what one large
    JSON request took stays in the heap after it: sixteen 16 MiB JSON bodies in a row peaked at about 450 MiB,
    and at about 390 MiB with this (docs/runtime.md, "Limits"). A ``MALLOC_TRIM_THRESHOLD_`` in the environment
    wins; on other C libraries and systems nothing is done.
    """
    if sys.platform != "linux" or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover  (no mallopt in this C library)
        return
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket with ``TCP_NODELAY`` (uvicorn starts listening on it).

    ``reuse_port``: with ``SO_REUSEPORT``, so that the workers of ``serve --workers`` each bind the port and the
    kernel spreads connections over them (Linux lets only processes of the same user join a port's group).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port} ({reason}): pick another --port or --host") from exc
    except OverflowError as exc:
        sock.close()
        raise ConfigError(f"--port {port} is not a TCP port: use 1 to 65535, or 0 for a free one") from exc
    return sock


def url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket, with the port the kernel picked."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


class Server(uvicorn.Server):
    """uvicorn's server, calling ``on_ready`` once it is accepting connections, and ``on_exit`` on a signal."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_ready: Callable[[], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        """Keep the callbacks."""
        super().__init__(config)
        self.on_ready = on_ready
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop gracefully (uvicorn's), and tell ``on_exit`` at once (the workers stop alongside)."""
        super().handle_exit(sig, frame)
        if self.on_exit is not None:
            self.on_exit()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then say so."""
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()


def uvicorn_config(app: App, settings: ServerSettings) -> GuardedConfig:
    """The server's uvicorn settings: httptools under the connection limits, uvloop, no access log or lifespan."""
    logging_config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    level = settings.log_level.upper()  # uvicorn names level 5 TRACE when it is imported
    logging_config["loggers"]["edgekit_runtime"] = {"handlers": ["default"], "level": level, "propagate": False}
    limits = ConnectionLimits(
        idle_timeout=settings.idle_timeout,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
    )
    return GuardedConfig(
        app,
        connections=Connections(limits, app.metrics),
        loop="auto",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        proxy_headers=False,  # nothing here reads the client's address; and no wrapper on every request
        log_level=settings.log_level,
        log_config=logging_config,
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_timeout,
    )


def serve(
    model: Model,
    settings: ServerSettings,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[str], None] | None = None,
    telemetry: Running | None = None,
    on_app: Callable[[App], None] | None = None,
    pool: WorkerPool | None = None,
) -> None:
    """Serve ``model`` until SIGTERM or SIGINT; ``on_ready(url)`` once connections are accepted.

    With ``telemetry``, inference requests are recorded; on the way out, after the last request, the open
    window is written and the publisher gets its drain time. With ``pool`` (the other workers of ``serve
    --workers``), ``/metrics`` is all of theirs, a stop stops them too, and their last requests are in
    telemetry's last window.
    """
    trim_freed_memory()
    app = create_app(model, settings, telemetry)
    if pool is not None:
        pool.app = app
        app.metrics_text = pool.metrics_text
    if on_app is not None:  # the fleet agent, which swaps the app's model
        on_app(app)
    sock = sock or listen(settings.host, settings.port)
    address = url(sock)

    def started() -> None:  # on the event loop, once connections are accepted
        app.loop = asyncio.get_running_loop()
        if on_ready is not None:
            on_ready(address)

    server = Server(uvicorn_config(app, settings), started, None if pool is None else pool.stop)
    if telemetry is not None:
        telemetry.start()
    try:
        with _exit_on_signals(server, pool):
            server.run(sockets=[sock])
    finally:
        sock.close()
        if pool is not None:
            pool.join(settings.graceful_timeout + 5.0)
        app.close()
        if telemetry is not None:
            telemetry.stop()


@contextlib.contextmanager
def _exit_on_signals(server: uvicorn.Server, pool: WorkerPool | None) -> Iterator[None]:
    """While serving, SIGTERM and SIGINT ask ``server`` (and ``pool``'s workers) to exit.

    Before uvicorn's handlers are in place and after them: uvicorn re-raises the signal into this one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask_to_exit(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        server.should_exit = True
        if pool is not None:
            pool.stop()

    previous = {sig: signal.signal(sig, ask_to_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
