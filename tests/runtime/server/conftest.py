"""Real servers for the server's tests: ``edgekit-runtime serve`` as a process, and uvicorn in a thread.

Every server binds 127.0.0.1 on a port the kernel picks (``--port 0``), so tests never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from edgekit_runtime.server.serve import Server, listen, url, uvicorn_config

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
#: the subprocess server's body limit: small, so that "over the limit" costs little to send
SMALL_LIMIT = 1 << 20


class ServeProcess:
    """``python -m edgekit_runtime.cli serve ...``: started, its ready line read, stopped by a signal."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = [sys.executable, "-m", "edgekit_runtime.cli", "serve", *args]
        if "--state-dir" not in args and "--no-telemetry" not in args:
            self.args += ["--state-dir", str(log.parent / f"state-{log.stem}")]  # each server its own outbox
        self.log = log
        self.ready_line = ""
        self.url = ""
        with log.open("wb") as err:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err)

    def wait_ready(self, timeout: float = 60.0) -> str:
        """The server's URL, from its ready line; fails with its stderr if it exits or takes too long."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if readable:
                line = self.proc.stdout.readline().decode()
                if line.startswith("serving "):
                    self.ready_line = line.strip()
                    self.url = self.ready_line.split(" on ", 1)[1].split()[0]
                    return self.url
            if self.proc.poll() is not None:
                break
        self.stop()
        pytest.fail(f"server did not start ({self.proc.returncode}): {self.stderr()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log.read_text(errors="replace")


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
