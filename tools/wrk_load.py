"""wrk, the HTTP load generator, driven with a Lua script that POSTs one JSON body and reports in JSON.

The script's ``done()`` writes the request count, the duration, the error counts and wrk's whole latency
histogram (microseconds, value and count), so that runs split into rounds merge into exact percentiles.
wrk's own CPU time comes from ``wait4``: a load generator near 100% of its CPU would be the bottleneck.
Install: ``apt-get install wrk`` (Debian/Ubuntu).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, "hist": [',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status))
  for i = 1, #latency do
    local value, count = latency(i)
    io.write(string.format('%s[%d, %d]', i > 1 and ', ' or '', value, count))
  end
  io.write(']}}\\n')
end
"""


class LoadError(RuntimeError):
    """wrk is missing, or a run gave no result."""


def wrk_path() -> str:
    """Where wrk is, or a :class:`LoadError` that says how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise LoadError("wrk is not installed: apt-get install wrk (Debian/Ubuntu), or build it from github.com/wg/wrk")
    return found


def lua_string(text: str) -> str:
    """``text`` as a Lua long string literal (no escapes needed inside)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def write_script(path: Path, body: bytes) -> Path:
    """A wrk script that POSTs ``body`` as JSON and reports in JSON."""
    path.write_text(_SCRIPT.format(body=lua_string(body.decode())), encoding="utf-8")
    return path


@dataclass
class LoadResult:
    """What one or more wrk runs against one server measured; runs merge with :meth:`add`."""

    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    status_errors: int = 0
    #: latency histogram, microseconds → count
    hist: dict[int, int] = field(default_factory=dict)
    #: wrk's CPU seconds (user + system) and wall seconds, for its CPU share
    loadgen_cpu_s: float = 0.0
    loadgen_wall_s: float = 0.0
    runs: int = 0

    def add(self, other: LoadResult) -> None:
        """Merge another run into this one."""
        self.requests += other.requests
        self.seconds += other.seconds
        self.errors += other.errors
        self.status_errors += other.status_errors
        for value, count in other.hist.items():
            self.hist[value] = self.hist.get(value, 0) + count
        self.loadgen_cpu_s += other.loadgen_cpu_s
        self.loadgen_wall_s += other.loadgen_wall_s
        self.runs += other.runs

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-th latency percentile in milliseconds (nearest rank on the histogram)."""
        if not self.hist:
            return None
        values = np.array(sorted(self.hist), dtype=np.float64)
        counts = np.cumsum([self.hist[int(v)] for v in values])
        rank = q / 100.0 * counts[-1]
        return float(values[int(np.searchsorted(counts, rank))]) / 1000.0

    @property
    def loadgen_cpu_share(self) -> float:
        """CPU seconds wrk used per wall second (1.0: one whole core busy)."""
        return self.loadgen_cpu_s / self.loadgen_wall_s if self.loadgen_wall_s else 0.0

    def to_json(self) -> dict[str, Any]:
        """Serialisable summary (the histogram is left out: it can be thousands of buckets)."""
        p50, p99 = self.percentile_ms(50), self.percentile_ms(99)
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": None if p50 is None else round(p50, 3),
            "p90_ms": None if (p := self.percentile_ms(90)) is None else round(p, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
            "max_ms": max(self.hist) / 1000.0 if self.hist else None,
            "errors": self.errors,
            "status_errors": self.status_errors,
            "loadgen_cpu_share": round(self.loadgen_cpu_share, 3),
            "runs": self.runs,
        }


def parse(output: str) -> LoadResult:
    """The ``BENCH {...}`` line of the script's ``done()``."""
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line.removeprefix("BENCH "))
            return LoadResult(
                requests=int(data["requests"]),
                seconds=int(data["duration_us"]) / 1e6,
                errors=int(data["errors"]),
                status_errors=int(data["status_errors"]),
                hist={int(v): int(c) for v, c in data["hist"]},
                runs=1,
            )
    raise LoadError(f"wrk printed no result: {output.strip()[-400:]}")


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    cpus: Sequence[int] | None = None,
    timeout_s: float = 10.0,
) -> LoadResult:
    """One wrk run; pinned to ``cpus`` with taskset when given."""
    argv = [wrk_path(), f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s"]
    argv += [f"--timeout={timeout_s:g}s", "-s", str(script), url]
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = proc.stdout.read() if proc.stdout is not None else b""
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # Ctrl-C or SIGTERM while wrk runs: it goes too
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise LoadError(f"wrk exited with {proc.returncode}: {out.decode(errors='replace').strip()[-400:]}")
    result = parse(out.decode(errors="replace"))
    result.loadgen_cpu_s = usage.ru_utime + usage.ru_stime
    result.loadgen_wall_s = wall
    return result


def merged(results: Iterable[LoadResult]) -> LoadResult:
    """One result from several runs."""
    total = LoadResult()
    for result in results:
        total.add(result)
    return total
