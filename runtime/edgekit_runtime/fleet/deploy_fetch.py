"""Where a deploy's bytes come from, and how many of them are taken.

An http(s) URL here (:func:`fetch_http`); the chunks of an ``mqtt:SHA256`` source come through the agent's
fetcher (:mod:`edgekit_runtime.fleet.chunks`). Whatever the source, the fetch stops at the command's signed
``size`` (:func:`capped`, TUF's *endless data*), and an http(s) fetch within a deadline that allows a slow link
but not a stalled one (*slow retrieval*).
"""

from __future__ import annotations

import time
import urllib.request
from typing import TYPE_CHECKING

from edgekit_runtime.errors import BundleError
from edgekit_runtime.fleet.deploy_command import DEFAULT_MAX_BUNDLE, HTTP_URL

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import TypeAlias

    from edgekit_runtime.fleet.deploy_command import DeployCommand

    #: where a deploy's bytes come from: the command, and a way to report progress (more ``fetching`` events)
    Fetch: TypeAlias = Callable[[DeployCommand, Callable[[str], None]], Iterable[bytes]]


def fetch_source(command: DeployCommand, _note: Callable[[str], None]) -> Iterable[bytes]:
    """:data:`Fetch` for http(s) URLs (``mqtt:`` sources need the agent's chunk fetcher)."""
    if not HTTP_URL.match(command.source):
        raise BundleError(
            f"a deploy's source is mqtt:SHA256 or an http(s) URL, not {command.source[:80]!r}: a path on the device "
            "is never taken from the network"
        )
    return fetch_http(command.source, max_bytes=command.size or DEFAULT_MAX_BUNDLE)


def fetch_http(source: str, *, max_bytes: int, timeout: float = 60.0, min_rate: float = 16 << 10) -> Iterator[bytes]:
    """The bundle's bytes from an http(s) URL, in chunks, and not for ever.

    A server that announces more than ``max_bytes`` is refused before its body is read; one that sends more
    without saying so is stopped by :func:`capped`, which the deployer puts around every source. ``timeout``:
    seconds any one read may wait; the whole fetch may take ``timeout`` plus ``max_bytes / min_rate`` seconds
    (16 KiB/s on average at least), so a server that drips bytes cannot hold the deploy (and the agent, which runs
    one command at a time) for ever.
    """
    deadline = time.monotonic() + timeout + max_bytes / min_rate
    seen = 0
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response:  # noqa: S310  (scheme checked)
            declared = str(response.headers.get("Content-Length") or "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise BundleError(
                    f"{source} is {declared} bytes, more than the {max_bytes} the command signed: refused"
                )
            while chunk := response.read(1 << 20):
                seen += len(chunk)
                if time.monotonic() > deadline:
                    raise BundleError(f"{source} is too slow ({seen} of {max_bytes} bytes in time): deploy again")
                yield chunk
    except OSError as exc:
        raise BundleError(f"cannot fetch {source} ({exc}): check the URL and the device's network") from None


def capped(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """``chunks``, refused once they pass ``max_bytes`` in all (whatever their source)."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > max_bytes:
            raise BundleError(f"the bundle is more than the {max_bytes} bytes the command signed: refused")
        yield chunk
