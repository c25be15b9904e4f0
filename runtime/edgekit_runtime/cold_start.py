"""Cold start and footprint: a fresh ``edgekit-runtime serve`` process, timed from its start to its first answer.

What a device pays after a reboot or a ``Restart=on-failure``: the interpreter starts, the runtime and the
engine are imported, the bundle is verified, loaded, warmed up and self-tested, the port opens (the
``serving …`` line), and the first inference request is answered. Then the serving process's ``VmRSS`` and
``VmHWM`` are read from ``/proc/PID/status``: the memory a service of this bundle needs. The files are in
the page cache after the first run, so later runs measure a warm disk.
"""

from __future__ import annotations

import contextlib
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from edgekit_runtime.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np

#: NumPy dtype names → Open Inference Protocol v2 datatypes
OIP_TYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
}


@dataclass(frozen=True)
class ColdStart:
    """One fresh serving process."""

    #: process start → the ``serving …`` line (verified, loaded, self-tested, listening)
    ready_s: float
    #: process start → the first inference answered over HTTP
    first_answer_s: float
    #: the serving process's resident memory after its first answer
    rss_bytes: int
    #: its peak resident memory so far
    hwm_bytes: int

    def to_json(self) -> dict[str, Any]:
        """As the bench JSON holds it."""
        return {
            "ready_s": round(self.ready_s, 4),
            "first_answer_s": round(self.first_answer_s, 4),
            "rss_bytes": self.rss_bytes,
            "hwm_bytes": self.hwm_bytes,
        }


def memory(status: str) -> tuple[int, int]:
    """``VmRSS`` and ``VmHWM`` in bytes, from the text of ``/proc/PID/status``."""
    values = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def infer_body(feeds: Mapping[str, np.ndarray]) -> bytes:
    """An Open Inference Protocol v2 JSON request for ``feeds``."""
    inputs = []
    for name, value in feeds.items():
        datatype = OIP_TYPES.get(value.dtype.name, "BYTES")
        data = value.astype(str).ravel().tolist() if datatype == "BYTES" else value.ravel().tolist()
        inputs.append({"name": name, "shape": list(value.shape), "datatype": datatype, "data": data})
    return orjson.dumps({"inputs": inputs})


def measure(
    bundle: Path,
    model_name: str,
    feeds: Mapping[str, np.ndarray],
    serve_args: Sequence[str] = (),
    timeout: float = 120.0,
) -> ColdStart:
    """Start ``edgekit-runtime serve BUNDLE`` on a free loopback port, ask it once, read its memory, stop it."""
    argv = [sys.executable, "-m", "edgekit_runtime.cli", "serve", str(bundle), "--host", "127.0.0.1", "--port", "0"]
    argv += ["--no-telemetry", *serve_args]
    body = infer_body(feeds)
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr)  # noqa: S603  (our own command)
        try:
            url = _ready_url(proc, start + timeout)
            ready = time.perf_counter() - start
            if url is None:
                stderr.seek(0)
                lines = stderr.read().decode(errors="replace").strip().splitlines()
                raise ModelError(f"the serve process did not start: {lines[-1] if lines else 'no output'}")
            _ask(f"{url}/v2/models/{model_name}/infer", body, timeout)
            answered = time.perf_counter() - start
            rss, hwm = memory(Path(f"/proc/{proc.pid}/status").read_text())
        finally:
            _stop(proc)
    return ColdStart(ready_s=ready, first_answer_s=answered, rss_bytes=rss, hwm_bytes=hwm)


def _ready_url(proc: subprocess.Popen[bytes], deadline: float) -> str | None:
    """The URL from the ``serving NAME VERSION on URL (…)`` line; ``None`` when the process ends first."""
    if proc.stdout is None:
        return None
    while time.perf_counter() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], 0.05)
        if readable:
            line = proc.stdout.readline().decode(errors="replace")
            if line.startswith("serving ") and " on " in line:
                return line.split(" on ", 1)[1].split()[0]
            if not line:
                return None
        elif proc.poll() is not None:
            return None
    return None


def _ask(url: str, body: bytes, timeout: float) -> None:
    request = urllib.request.Request(  # noqa: S310  (a loopback http URL the server printed)
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            answer.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:200]
        raise ModelError(f"the serve process answered HTTP {exc.code} to the first request: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"the serve process did not answer the first request ({exc})") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()
