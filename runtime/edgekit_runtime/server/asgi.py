"""The HTTP edge of the server, in plain ASGI: a request read within its limits, a response written.

Anything a client gets wrong at this level is an :class:`HttpError` carrying its status; each protocol
turns it into its own error body. A client that goes away mid-request is :class:`ClientGone`, and
nothing is written back.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
OCTET_STREAM = b"application/octet-stream"
#: ``Content-Encoding`` → zlib ``wbits`` (HTTP's "deflate" is the zlib format, as tritonclient sends it)
_ENCODINGS = {"gzip": 31, "deflate": 15}


class HttpError(Exception):
    """A request the server refuses, with the status to answer and a one-line message."""

    def __init__(self, status: int, message: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Keep the status, the message and any headers the answer needs (``Allow`` for a 405)."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ClientGone(Exception):  # noqa: N818  (not an error: the client hung up)
    """The client closed the connection before its request was read."""


@dataclass
class Request:
    """What a handler needs of a request: method, path, headers, body and the path's parameters."""

    method: str
    path: str
    #: lower-case header names (ASGI gives them so); a repeated header keeps its last value
    headers: dict[bytes, bytes]
    body: bytes = b""
    #: what the route took from the path (model name and version for ``/v2/models/...``)
    params: tuple[str, ...] = ()

    def header(self, name: bytes) -> str | None:
        """A header's value as text (Latin-1, as HTTP/1.1 has it), or ``None``."""
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    def json(self) -> Any:  # noqa: ANN401
        """The body parsed as JSON, or a 400 saying why it is not JSON."""
        return parse_json(self.body, "body")


@dataclass
class Response:
    """A complete response: status, body, content type and any extra headers."""

    status: int
    body: bytes = b""
    content_type: bytes | None = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def json_response(doc: Any, status: int = 200) -> Response:  # noqa: ANN401
    """``doc`` as a JSON response (NumPy arrays serialise as nested lists)."""
    return Response(status, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))


def parse_json(data: bytes, what: str) -> Any:  # noqa: ANN401
    """``data`` parsed as JSON, or a 400 naming ``what`` and the parser's complaint."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"{what} is not valid JSON: {exc}") from exc


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON in UTF-8 (a request that declares no type is read as JSON)."""
    value = request.header(b"content-type")
    if value is None:
        return
    mime, _, parameters = value.partition(";")
    mime = mime.strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        raise HttpError(415, f"Content-Type '{mime[:60]}' is not JSON: send Content-Type: application/json")
    for parameter in parameters.split(";"):
        key, _, charset = parameter.partition("=")
        if key.strip().lower() == "charset" and charset.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise HttpError(415, f"charset '{charset.strip()[:40]}' is not supported: send UTF-8 JSON")


async def read_body(headers: dict[bytes, bytes], receive: Receive, limit: int, *, stall_timeout: float) -> bytes:
    """The whole body, decompressed if ``Content-Encoding`` says so; 413 past ``limit`` bytes either way.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; uvicorn
    discards what the client still sends and keeps the connection. A body that stops arriving part-way
    (a ``Content-Length`` larger than what was sent) is a 408 after ``stall_timeout`` seconds, saying how
    much came; the first chunk is awaited without a timer, which keeps the common one-chunk body cheap.
    """
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, _too_large(f"request body is {int(declared)} bytes", limit))
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            message = await (asyncio.wait_for(receive(), stall_timeout) if chunks else receive())
        except asyncio.TimeoutError:
            expected = f"of the {int(declared)} declared " if declared is not None and declared.isdigit() else ""
            raise HttpError(
                408,
                f"request body stalled: {size} bytes {expected}arrived, then nothing for {stall_timeout:g} s; "
                "send the whole body (is Content-Length right?)",
                headers=((b"connection", b"close"),),
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, _too_large(f"request body is over {limit} bytes", limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = headers.get(b"content-encoding", b"").decode("latin-1").strip().lower()
    return _decoded(body, encoding, limit) if encoding and encoding != "identity" else body


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        raise HttpError(415, f"Content-Encoding '{encoding}' is not supported: send gzip, deflate or identity")
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid {encoding} data ({exc}): compress it again") from exc
    if len(data) > limit:
        raise HttpError(413, _too_large(f"request body decompresses to over {limit} bytes", limit))
    if not inflater.eof:
        raise HttpError(400, f"{encoding} body is truncated: send the whole compressed stream")
    return data


def _too_large(what: str, limit: int) -> str:
    return (
        f"{what}, over this server's {limit}-byte limit: send fewer samples per request, "
        "or start the server with a larger --max-body-bytes"
    )


async def send_response(send: Send, response: Response) -> None:
    """Write ``response`` with its ``Content-Length`` (so uvicorn never needs chunked encoding)."""
    headers = [(b"content-length", str(len(response.body)).encode())]
    if response.content_type is not None:
        headers.append((b"content-type", response.content_type))
    headers += response.headers
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
