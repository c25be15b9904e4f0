"""HTTP/1.1 over a bare socket, for requests no client library will send: odd bytes, half-sent heads, idle sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Answer:
    """One response as it came off the wire."""

    status: int
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    #: the server closed the connection after it (``Connection: close``, or it just hung up)
    closed: bool = False


def address(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``http://HOST:PORT``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    """A connected TCP socket to the server at ``url``."""
    return socket.create_connection(address(url), timeout=timeout)


def is_closed(sock: socket.socket, wait: float) -> bool:
    """Whether the server closes ``sock`` within ``wait`` seconds (EOF or a reset; anything it sends is read)."""
    deadline = time.monotonic() + wait
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True


class Reader:
    """Reads responses from one socket, keeping what arrived past the last one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.eof = False

    def _more(self) -> None:
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise EOFError
        self.buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def answer(self, *, head: bool = False) -> Answer:
        """The next final response (1xx ones are skipped); ``EOFError`` if the server hung up first.

        ``head``: it answers a HEAD request, so it has no body whatever its ``Content-Length`` says.
        """
        while True:
            status_line, *lines = self._until(b"\r\n\r\n").split(b"\r\n")
            status = int(status_line.split()[1])
            headers = {}
            for line in lines:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if status >= 200:
                break
        if head:
            body = b""
        elif b"content-length" in headers:
            body = self._exactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = self._chunked()
        else:
            body = self._rest()
        closed = headers.get(b"connection", b"").lower() == b"close" or self.eof
        return Answer(status, headers, body, closed)

    def _chunked(self) -> bytes:
        parts = []
        while size := int(self._until(b"\r\n").split(b";")[0], 16):
            parts.append(self._exactly(size))
            self._exactly(2)
        self._until(b"\r\n")
        return b"".join(parts)

    def _rest(self) -> bytes:
        try:
            while True:
                self._more()
        except EOFError:
            pass
        data, self.buffer = self.buffer, b""
        return data


class RawClient:
    """Sends raw requests one at a time, reconnecting whenever the server closed the last connection."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.reader: Reader | None = None
        self.connections = 0

    def send(self, request: bytes) -> Answer:
        """One request's answer (``EOFError`` if the server hung up without one)."""
        head = request.startswith(b"HEAD ")
        if self.sock is None or self.reader is None:
            self.sock = connect(self.url, self.timeout)
            self.reader = Reader(self.sock)
            self.connections += 1
        try:
            # the server may answer before it reads everything (a 413, a 431): read what it said
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.sock.sendall(request)
            answer = self.reader.answer(head=head)
        except BaseException:
            self.close()
            raise
        if answer.closed:
            self.close()
        return answer

    def close(self) -> None:
        """Close the connection, if one is open."""
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A request's bytes, with ``Host`` and a ``Content-Length`` unless the headers frame the body themselves."""
    names = {name.lower() for name, _ in headers}
    lines = [method + b" " + target + b" HTTP/1.1"]
    if b"host" not in names:
        lines.append(b"Host: edgekit")
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
