"""The channel between the serving process and its worker processes: messages, requests and their replies.

One channel per worker, over a socket pair the parent made (the child inherits its end as a file
descriptor): ``multiprocessing.connection``'s framing and pickling, which only these two processes of the
same program and user ever read, never anything from the network. A reader thread per end dispatches each
message by its kind. A request carries an id; its reply (``reply``, or ``failed`` with the one-line reason)
resolves the waiting caller's future, so several requests may be in flight at once, from any thread.

Message kinds, child to parent: ``ready`` (serving), ``refused`` (could not start: the reason), ``records``
(telemetry requests), ``scrape`` (a request: ``/metrics`` for all workers). Parent to child: ``snapshot``,
``counts``, ``swap`` (requests). Either side ends the channel by closing it; the other sees it end.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # not yet the builtin on Python 3.10
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from edgekit_runtime.errors import EdgekitError, WorkerError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

logger = logging.getLogger("edgekit_runtime.server")

REPLY, FAILED = "reply", "failed"


class Channel:
    """One end of a worker's channel: send messages, make requests, and dispatch what arrives.

    ``on_message``: handlers by kind for one-way messages (called on the reader thread: keep them short);
    ``on_request``: handlers by kind for requests, each run on a thread of its own (they may block, and may
    make requests themselves); ``on_end``: called once when the channel ends.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        on_message: Mapping[str, Callable[[Any], None]] | None = None,
        on_request: Mapping[str, Callable[[Any], Any]] | None = None,
        on_end: Callable[[], None] | None = None,
        name: str = "edgekit-channel",
    ) -> None:
        """Wrap ``conn``; :meth:`start` starts reading."""
        self._conn = conn
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._waiting_lock = threading.Lock()
        self.on_message = dict(on_message or {})
        self.on_request = dict(on_request or {})
        self._on_end = on_end
        self._name = name
        self._reader: threading.Thread | None = None
        self.closed = threading.Event()

    @classmethod
    def from_fd(cls, fd: int, **kwargs: Any) -> Channel:  # noqa: ANN401  (the constructor's keywords)
        """The child's end, from the descriptor it inherited."""
        return cls(Connection(fd), **kwargs)

    def start(self) -> None:
        """Read and dispatch on a thread of its own until the channel ends."""
        self._reader = threading.Thread(target=self._read, name=self._name, daemon=True)
        self._reader.start()

    def send(self, kind: str, payload: Any = None) -> None:  # noqa: ANN401  (any picklable message)
        """Send one message; :class:`WorkerError` if the other end is gone."""
        try:
            with self._send_lock:
                self._conn.send((kind, 0, payload))
        except (OSError, ValueError, EOFError) as exc:
            raise WorkerError(f"the worker channel is closed ({exc})") from None

    def request(self, kind: str, payload: Any = None, timeout: float = 10.0) -> Any:  # noqa: ANN401
        """Ask the other end and wait for its answer; its refusal, or its absence, is a :class:`WorkerError`."""
        future: Future[Any] = Future()
        ident = next(self._ids)
        with self._waiting_lock:
            if self.closed.is_set():
                raise WorkerError("the worker channel is closed")
            self._waiting[ident] = future
        try:
            with self._send_lock:
                self._conn.send((kind, ident, payload))
            return future.result(timeout)
        except (OSError, ValueError, EOFError) as exc:
            raise WorkerError(f"the worker channel is closed ({exc})") from None
        except FutureTimeout:
            raise WorkerError(f"a worker did not answer '{kind}' within {timeout:g} s") from None
        finally:
            with self._waiting_lock:
                self._waiting.pop(ident, None)

    def close(self) -> None:
        """Close this end (the other sees the channel end, and so does this end's reader)."""
        self.closed.set()
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self._conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked on the socket, which closing does not
        self._conn.close()

    def _read(self) -> None:
        try:
            while True:
                kind, ident, payload = self._conn.recv()
                self._dispatch(kind, ident, payload)
        except (EOFError, OSError, ValueError):
            pass
        finally:
            self._end()

    def _dispatch(self, kind: str, ident: int, payload: Any) -> None:  # noqa: ANN401
        if kind in {REPLY, FAILED}:
            with self._waiting_lock:
                future = self._waiting.get(ident)
            if future is not None and not future.done():
                if kind == REPLY:
                    future.set_result(payload)
                else:
                    future.set_exception(WorkerError(str(payload)))
            return
        if ident:
            handler = self.on_request.get(kind)
            threading.Thread(target=self._answer, args=(handler, kind, ident, payload), daemon=True).start()
            return
        on_message = self.on_message.get(kind)
        if on_message is None:
            logger.warning("worker channel: unknown message '%s' ignored", kind)
            return
        try:
            on_message(payload)
        except Exception:  # a bug in one handler must not end the channel
            logger.exception("worker channel: handling '%s' failed", kind)

    def _answer(self, handler: Callable[[Any], Any] | None, kind: str, ident: int, payload: Any) -> None:  # noqa: ANN401
        answer: tuple[str, Any] = (FAILED, f"unknown request '{kind}'")
        try:
            if handler is not None:
                answer = (REPLY, handler(payload))
        except EdgekitError as exc:
            answer = (FAILED, str(exc))
        except Exception as exc:
            logger.exception("worker channel: answering '%s' failed", kind)
            answer = (FAILED, f"internal error ({type(exc).__name__}): the log has the details")
        try:
            with self._send_lock:
                self._conn.send((answer[0], ident, answer[1]))
        except (OSError, ValueError):
            pass  # the other end is gone: nobody waits for the answer

    def _end(self) -> None:
        self.closed.set()
        with self._waiting_lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for future in waiting:
            if not future.done():
                future.set_exception(WorkerError("the worker channel ended"))
        if self._on_end is not None:
            self._on_end()
