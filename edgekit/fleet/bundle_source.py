"""Where devices fetch a rollout's bundle from, after the bundle was checked on the host.

:func:`check_bundle` reads the manifest with the runtime's reader (signature not required: the devices judge
that against their own trusted keys) and hashes the file. :class:`BundleServer` serves that one file over
HTTP (the stdlib's ``ThreadingHTTPServer``) at ``/<sha256>.edgebundle`` for as long as a rollout runs.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import BundleCheckError, ConfigError
from edgekit_runtime.bundle import open_bundle

if TYPE_CHECKING:
    from types import TracebackType


@dataclass(frozen=True)
class LocalBundle:
    """A bundle file on the host, checked."""

    path: Path
    name: str
    version: str
    sha256: str
    #: bytes of the file
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        """As plain JSON values."""
        return {
            "path": str(self.path),
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
        }


def check_bundle(path: Path) -> LocalBundle:
    """The bundle at ``path``, its manifest read and its file hashed; an error for anything that is not one."""
    path = Path(path).resolve()
    if not path.is_file():
        raise BundleCheckError(f"no bundle at '{path}': give the path of an .edgebundle file")
    bundle = open_bundle(path, require_signature=False)  # the runtime's BundleError (exit 3) for anything else
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return LocalBundle(path=path, name=bundle.name, version=bundle.version, sha256=digest.hexdigest(), size=size)


def parse_serve(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``--serve``) as host and port."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:  # noqa: PLR2004
        raise ConfigError(f"--serve '{text}' is not HOST:PORT: give the address devices reach, e.g. 10.0.0.5:8700")
    return host, int(port)


class BundleServer:
    """``with BundleServer(bundle, host, port) as server:`` serves ``server.url`` until the block ends."""

    def __init__(self, bundle: LocalBundle, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0: any free one)."""
        self.bundle = bundle
        route = f"/{bundle.sha256}.edgebundle"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != route:
                    self.send_error(404, "only the rollout's bundle is served here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(bundle.path.stat().st_size))
                self.end_headers()
                with bundle.path.open("rb") as fh:
                    shutil.copyfileobj(fh, self.wfile, 1 << 20)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401  (the stdlib's signature)
                """Quiet: the rollout's table says what the devices did."""

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"--serve {host}:{port}: cannot listen there ({exc}): pick another address or port"
            ) from exc
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="edgekit-bundle-server", daemon=True)

    @property
    def url(self) -> str:
        """Where devices fetch the bundle."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{self.bundle.sha256}.edgebundle"

    def __enter__(self) -> BundleServer:  # noqa: PYI034  (typing.Self needs Python 3.11; we support 3.10)
        """Start serving."""
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
