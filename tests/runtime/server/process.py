"""``edgekit-runtime serve`` as a real process, for the server's and telemetry's tests."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


class ServeProcess:
    """``python -m edgekit_runtime.cli serve ...``: started, its ready line read, stopped by a signal."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        prefix: Sequence[str] = (),
        cwd: Path | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        # prefix: a command the server runs under, e.g. ["taskset", "-c", "0"]; cwd: its working directory;
        # argv: the whole command line instead, ``args`` included (the board lab's chroot)
        self.args = (
            list(argv) if argv is not None else [*prefix, sys.executable, "-m", "edgekit_runtime.cli", "serve", *args]
        )
        if argv is None and "--state-dir" not in args and "--no-telemetry" not in args:
            self.args += ["--state-dir", str(log.parent / f"state-{log.stem}")]  # each server its own outbox
        self.log = log
        self.ready_line = ""
        self.url = ""
        with log.open("wb") as err:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err, cwd=cwd)

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
