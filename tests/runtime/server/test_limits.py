"""The connection limits, each against the attack that found it: connections that idle, heads sent slowly or
without end, bodies that never come, and more connections than the cap; with every attack, real requests
still get answers.

The servers run in a thread (uvicorn with the server's own protocol) with short timeouts, so each attack
takes a second or less.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from edgekit_runtime import load
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings

from .conftest import DIGITS, thread_server
from .raw_http import Reader, connect, is_closed, request

if TYPE_CHECKING:
    import socket

LIVE = request(b"GET", b"/v2/health/live", [])


@contextlib.contextmanager
def serving(**limits):
    """The digits MLP behind ``limits``: yields (url, the app, the server's connections)."""
    settings = ServerSettings(port=0, concurrency=1, **limits)
    app = create_app(load(DIGITS / "mlp.onnx"), settings)
    with thread_server(app, settings) as (url, server):
        yield url, app, server.config.connections


def closed_by(app, reason: str) -> int:
    return int(app.metrics.connections_closed.values.get((reason,), 0))


def closes_within(sock: socket.socket, low: float, high: float) -> float:
    """Seconds until the server closes ``sock``, checked to be between ``low`` and ``high``."""
    started = time.monotonic()
    assert is_closed(sock, high + 1), f"still open after {high + 1} s"
    seconds = time.monotonic() - started
    assert low <= seconds <= high, seconds
    return seconds


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout():
    with serving(idle_timeout=0.3) as (url, app, _), connect(url) as sock:
        closes_within(sock, 0.2, 2.0)
        assert closed_by(app, "idle") == 1


def test_a_keep_alive_connection_is_closed_after_the_idle_timeout():
    with serving(idle_timeout=0.3) as (url, app, _), connect(url) as sock:
        sock.sendall(LIVE)
        assert Reader(sock).answer().status == 200
        closes_within(sock, 0.2, 2.0)
        assert closed_by(app, "idle") == 1


def slow_sender(sock: socket.socket, pieces, every: float, stop: threading.Event) -> threading.Thread:
    """Sends ``pieces`` one every ``every`` seconds until ``stop`` or the server closes."""

    def send() -> None:
        for piece in pieces:
            if stop.wait(every):
                return
            try:
                sock.sendall(piece)
            except OSError:
                return

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "pieces",
    [
        [b"GET /v2/health/live HTTP/1.1\r\n"] + [b"X-Slow: a\r\n"] * 200,  # slowloris: a header every 50 ms
        [b"GET /"] + [b"a"] * 200,  # a request line that never ends
        [b"\r\n"] * 200,  # blank lines, which begin no request at all
    ],
    ids=["headers", "request-line", "blank-lines"],
)
def test_a_request_head_sent_slowly_gets_408_after_the_header_timeout(pieces):
    with serving(header_timeout=0.5, idle_timeout=30) as (url, app, _), connect(url) as sock:
        stop = threading.Event()
        sender = slow_sender(sock, pieces, 0.05, stop)
        started = time.monotonic()
        answer = Reader(sock).answer()
        seconds = time.monotonic() - started
        stop.set()
        sender.join(5)
        assert answer.status == 408
        assert answer.closed
        assert answer.body == b'{"error":"request head not complete within 0.5 s: send the whole head at once"}'
        assert 0.4 <= seconds <= 3.0, seconds
        assert closed_by(app, "header_timeout") == 1
        assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_a_request_head_over_64_kib_gets_431_and_a_smaller_one_is_served():
    with serving() as (url, app, _):
        with connect(url) as sock:
            sock.sendall(request(b"GET", b"/v2/health/live", [(b"X-Big", b"a" * (70 << 10))]))
            answer = Reader(sock).answer()
        assert answer.status == 431
        assert answer.closed
        assert b"request head over 65536 bytes" in answer.body
        assert closed_by(app, "head_too_large") == 1
        with connect(url) as sock:
            sock.sendall(request(b"GET", b"/v2/health/live", [(b"X-Big", b"a" * (60 << 10))]))
            assert Reader(sock).answer().status == 200


def test_a_header_that_never_ends_is_cut_off_at_the_head_limit():
    with serving(header_timeout=30) as (url, app, _), connect(url) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nX-Endless: ")
        sent = 0
        with contextlib.suppress(OSError):
            while sent < 8 << 20:  # the server stops it long before 8 MiB
                sock.sendall(b"a" * 4096)
                sent += 4096
        assert is_closed(sock, 5)
        assert closed_by(app, "head_too_large") == 1


def test_chunk_trailers_that_never_end_are_cut_off():
    with serving(body_timeout=30) as (url, app, _), connect(url) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'15\r\n{"features": [[0.5]]}\r\n0\r\nX-Trailer: '
        )
        sent = 0
        with contextlib.suppress(OSError):
            while sent < 8 << 20:
                sock.sendall(b"a" * 4096)
                sent += 4096
        assert is_closed(sock, 5)
        assert closed_by(app, "head_too_large") == 1


def test_a_request_whose_body_never_comes_gets_408_after_the_body_timeout():
    with serving(body_timeout=0.3) as (url, app, _), connect(url) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        started = time.monotonic()
        answer = Reader(sock).answer()
        assert 0.2 <= time.monotonic() - started <= 3.0
        assert answer.status == 408
        assert b"request body stalled: 0 bytes of the 100 declared arrived" in answer.body
        assert app.budget.reserved == 0


def test_six_hundred_idle_connections_leave_room_for_a_real_request():
    # the attack: 600 connections that send nothing; the default cap is 128 and the idle timeout long
    with serving(idle_timeout=60) as (url, app, connections):
        sockets = [connect(url) for _ in range(600)]
        try:
            deadline = time.monotonic() + 10
            while closed_by(app, "evicted") < 600 - 128 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(connections.open) <= 128
            assert closed_by(app, "evicted") == 600 - 128
            assert sum(is_closed(s, 0) for s in sockets[:10]) == 10  # the oldest went first
            response = httpx.post(f"{url}/predict", json={"features": [[0.5] * 64]}, timeout=10)
            assert response.status_code == 200
            assert not is_closed(sockets[-1], 0)  # the newest idle ones are still open
        finally:
            for sock in sockets:
                sock.close()


def test_half_sent_heads_are_idle_to_the_cap_and_make_room_too():
    with serving(max_connections=4, header_timeout=60) as (url, app, connections):
        sockets = [connect(url) for _ in range(4)]
        try:
            for sock in sockets:
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nX-Slow: ")  # slowloris, still sending its head
            assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200
            assert closed_by(app, "evicted") >= 1
            assert len(connections.open) <= 4
        finally:
            for sock in sockets:
                sock.close()


def test_past_the_cap_with_every_connection_busy_a_new_one_is_closed_at_once():
    with serving(max_connections=4, body_timeout=10) as (url, app, connections):
        busy = [connect(url) for _ in range(4)]
        try:
            for sock in busy:  # a request in progress on each: its body is still coming
                sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            deadline = time.monotonic() + 5
            while connections.idle and time.monotonic() < deadline:
                time.sleep(0.01)
            with connect(url) as extra:
                closes_within(extra, 0.0, 1.0)
            assert closed_by(app, "refused") == 1
            assert not any(is_closed(sock, 0) for sock in busy)
        finally:
            for sock in busy:
                sock.close()
        deadline = time.monotonic() + 5
        while connections.open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200


def test_limits_are_counted_in_metrics():
    with serving(idle_timeout=0.2) as (url, _, _), connect(url) as sock:
        assert is_closed(sock, 3)
        text = httpx.get(f"{url}/metrics").text
    assert 'edgekit_connections_closed_total{reason="idle"} 1' in text
    assert "edgekit_memory_reserved_bytes 0" in text
