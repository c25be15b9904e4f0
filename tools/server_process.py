"""A benchmarked server as a process group: start it pinned, time it to its first 200, read its memory and CPU, stop it.

Every server starts in a session of its own (``start_new_session``), so its workers, helpers and
reloaders share its process group: memory and CPU are summed over the group, and stopping it signals
the whole group. :class:`ProcessGroups` stops every group it started on the way out, Ctrl-C and SIGTERM
included; each server also gets ``PR_SET_PDEATHSIG`` so it goes if the bench is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType, TracebackType

_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A server that would not start, or died; the message ends with the tail of its log."""


@dataclass(frozen=True)
class ProcInfo:
    """One process of a group."""

    pid: int
    name: str
    rss_kib: int
    pss_kib: int
    cpu_s: float


def _stat(pid: int) -> tuple[int, float] | None:
    """(process group, user + system CPU seconds) from ``/proc/PID/stat``, or ``None`` once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _TICKS


def _kib(path: str, key: str) -> int:
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in argv if w]
    # "python .../bin/uvicorn ..." says less than "uvicorn ..."; multiprocessing children say what they are
    words = [Path(w).name if "/" in w else w for w in words]
    if words and words[0].startswith("python"):
        words = words[2:] if words[1:2] == ["-m"] else words[1:]
    return " ".join(words)[:80]


def group_pids(pgid: int) -> list[int]:
    """Every live process whose process group is ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == pgid:
                found.append(int(entry.name))
    return sorted(found)


def group_info(pgid: int) -> list[ProcInfo]:
    """Memory (RSS and PSS) and CPU time of each process in the group."""
    out = []
    for pid in group_pids(pgid):
        stat = _stat(pid)
        if stat is None:
            continue
        rss = _kib(f"/proc/{pid}/status", "VmRSS")
        pss = _kib(f"/proc/{pid}/smaps_rollup", "Pss")
        out.append(ProcInfo(pid, _name(pid), rss, pss, stat[1]))
    return out


def group_cpu(pgid: int) -> dict[int, float]:
    """CPU seconds so far of each process in the group, by PID."""
    out = {}
    for pid in group_pids(pgid):
        stat = _stat(pid)
        if stat is not None:
            out[pid] = stat[1]
    return out


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the bench process dies (Linux only; best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Server:
    """A started server process group."""

    key: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    @property
    def pgid(self) -> int:
        """The group every process of this server is in."""
        return self.proc.pid

    def log_tail(self, lines: int = 8) -> str:
        """The last lines the server printed."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def alive(self) -> bool:
        """Its main process has not exited."""
        return self.proc.poll() is None


@dataclass
class ProcessGroups:
    """Starts servers; stops every group it started when the ``with`` block ends, however it ends."""

    logs: Path
    cpus: Sequence[int] | None = None
    servers: list[Server] = field(default_factory=list)
    _previous: object = None

    def __enter__(self) -> ProcessGroups:  # noqa: PYI034  (Self needs Python 3.11)
        """Turn SIGTERM into SystemExit, so that the ``finally`` blocks that stop servers run."""
        self._previous = signal.signal(signal.SIGTERM, _exit_on_signal)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop everything still running."""
        try:
            for server in list(self.servers):
                self.stop(server)
        finally:
            signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]

    def start(
        self,
        key: str,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        cpus: Sequence[int] | None = None,
    ) -> Server:
        """Start ``argv`` in a new session, pinned to ``cpus`` (else :attr:`cpus`) with ``taskset`` (same PID)."""
        cpus = cpus or self.cpus
        pinned = ["taskset", "-c", ",".join(map(str, cpus)), *argv] if cpus else list(argv)
        log = self.logs / f"{key}-{len(self.servers)}.log"
        with log.open("wb") as sink:
            started = time.perf_counter()
            proc = subprocess.Popen(
                pinned,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509  (the bench is single-threaded when it starts servers)
            )
        server = Server(key, proc, log, started)
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        """SIGTERM to the group, SIGKILL after 5 s; then reap."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and (server.alive() or group_pids(server.pgid)):
                time.sleep(0.02)
            if not server.alive() and not group_pids(server.pgid):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=1.0)
        if server in self.servers:
            self.servers.remove(server)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    raise SystemExit(128 + signum)


def wait_ready(
    server: Server, port: int, path: str, body: bytes, *, timeout: float = 90.0, poll: float = 0.002
) -> tuple[float, bytes]:
    """Seconds from process start to the first 200 on ``POST path``, and that response's body.

    Polls every ``poll`` seconds with a fresh connection; raises :class:`ServerError` when the server
    exits or ``timeout`` passes first.
    """
    deadline = server.started + timeout
    last = "no answer"
    while time.perf_counter() < deadline:
        if not server.alive():
            raise ServerError(f"{server.key} exited with {server.proc.returncode}: {server.log_tail()}")
        status, data = post(port, path, body, timeout=5.0)
        if status == 200:  # noqa: PLR2004
            return time.perf_counter() - server.started, data
        last = f"HTTP {status}: {data[:200]!r}" if status else data.decode(errors="replace")
        time.sleep(poll)
    raise ServerError(f"{server.key} gave no 200 within {timeout:.0f} s (last: {last}): {server.log_tail()}")


def post(port: int, path: str, body: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """One JSON POST to 127.0.0.1 on a fresh connection: (status, body), or (0, error text) when it fails."""
    return request(port, "POST", path, body, timeout=timeout)


def request(
    port: int, method: str, path: str, body: bytes | None = None, *, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One request to 127.0.0.1 on a fresh connection: (status, body), or (0, error text) when it fails."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}".encode()
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
