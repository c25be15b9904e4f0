"""Real servers for the server's tests: ``edgekit-runtime serve`` as a process, and uvicorn in a thread.

Every server binds 127.0.0.1 on a port the kernel picks (``--port 0``), so tests never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from edgekit_runtime.server.serve import Server, listen, url, uvicorn_config
from tests.runtime.server.process import ServeProcess

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
#: the subprocess server's body limit: small, so that "over the limit" costs little to send
SMALL_LIMIT = 1 << 20


@pytest.fixture(scope="session")
def mlp_server(tmp_path_factory, signed_bundle, keys):
    """The signed digits MLP bundle, verified against its key, served with a 1 MiB body limit."""
    log = tmp_path_factory.mktemp("mlp-server") / "stderr.log"
    args = [str(signed_bundle), "--port", "0", "--trust", str(keys[1]), "--max-body-bytes", str(SMALL_LIMIT)]
    server = ServeProcess(args, log)
    server.wait_ready()
    yield server
    server.stop()


@contextlib.contextmanager
def thread_server(app, settings):
    """``app`` on uvicorn (httptools, uvloop) in a thread, on a free loopback port: yields (url, server)."""
    sock = listen("127.0.0.1", 0)
    server = Server(uvicorn_config(app, settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the in-process server did not start"
    try:
        yield url(sock), server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        app.close()


def asgi(app, method: str, path: str, **kwargs) -> httpx.Response:
    """One request straight into the ASGI app (no sockets): for what needs no real server."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edgekit") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())
