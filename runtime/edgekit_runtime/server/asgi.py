"""The HTTP edge of the server, in plain ASGI: a request read within its limits, a response written.

Anything a client gets wrong at this level is an :class:`~edgekit_runtime.errors.HttpError` carrying its
status; each protocol turns it into its own error body. A client that goes away mid-request is
:class:`ClientGone`, and nothing is written back.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from edgekit_runtime.errors import HttpError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, MutableMapping

    import numpy as np

    from edgekit_runtime.server.budget import Reservation

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
OCTET_STREAM = b"application/octet-stream"
#: ``Content-Encoding`` → zlib ``wbits`` (HTTP's "deflate" is the zlib format, as tritonclient sends it)
_ENCODINGS = {"gzip": 31, "deflate": 15}
#: more significant digits than this, and a length is larger than any body (int() refuses over 4300 digits)
_DIGITS = 18


class ClientGone(Exception):  # noqa: N818  (not an error: the client hung up)
    """The client closed the connection before its request was read.

    A signal, not an error: it stays outside the :class:`~edgekit_runtime.errors.EdgekitError` tree so that
    no ``except EdgekitError`` answers it or logs it as a failure. The app catches it, writes nothing back,
    and counts the request as gone.
    """


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
    #: this request's share of the memory budget (``None``: it has no body, or the app has no budget)
    memory: Reservation | None = None

    def header(self, name: bytes) -> str | None:
        """A header's value as text (Latin-1, as HTTP/1.1 has it), or ``None``."""
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    def json(self) -> Any:  # noqa: ANN401
        """The body parsed as JSON, or a 400 saying why it is not JSON; the body itself is let go."""
        doc = self.parse(self.body, "body")
        self.body = b""
        return doc

    def parse(self, data: bytes, what: str) -> Any:  # noqa: ANN401
        """``data`` (the body, or its JSON part) parsed as JSON, once the memory budget holds what it decodes into."""
        if self.memory is not None:
            self.memory.for_json(len(self.body), data)
        return parse_json(data, what)

    def settle(self, feeds: Mapping[str, np.ndarray]) -> None:
        """The inputs are checked: the body goes, and the budget keeps what the arrays need while the model runs.

        The handler drops its own references to the body and its JSON before it calls this.
        """
        self.body = b""
        if self.memory is not None:
            self.memory.keep(feeds.values())


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


def ascii_int(value: bytes) -> int | None:
    """A header's decimal number, or ``None`` if it is not one.

    Only ASCII digits count: ``"²".isdigit()`` is true, and ``int("²")`` fails. Past 18 significant digits the
    number is 10**18, larger than any body (``int()`` refuses more than 4300 digits).
    """
    value = value.strip(b" \t")
    if not value.isdigit():  # bytes.isdigit() is ASCII only
        return None
    value = value.lstrip(b"0") or b"0"
    return 10**_DIGITS if len(value) > _DIGITS else int(value)


def declared_length(headers: Mapping[bytes, bytes], limit: int) -> int | None:
    """The ``Content-Length`` (``None`` if there is none: chunked); 413 if it is over ``limit``."""
    raw = headers.get(b"content-length")
    declared = None if raw is None else ascii_int(raw)
    if declared is not None and declared > limit:
        raise HttpError(413, _too_large(f"request body is {declared} bytes", limit))
    return declared


async def read_body(headers: dict[bytes, bytes], receive: Receive, limit: int, *, stall_timeout: float) -> bytes:
    """The whole body, decompressed if ``Content-Encoding`` says so; 413 past ``limit`` bytes either way.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; uvicorn
    discards what the client still sends and keeps the connection. A body that does not arrive, or stops
    arriving part-way (a ``Content-Length`` larger than what was sent), is a 408 after ``stall_timeout``
    seconds, saying how much came.
    """
    declared = declared_length(headers, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), stall_timeout)
        except asyncio.TimeoutError:
            expected = f"of the {declared} declared " if declared is not None else ""
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
