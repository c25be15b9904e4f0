"""The results of ``tools/bench_serve.py``: what each server measured, the issue's targets, and how they print."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from wrk_load import LoadResult

#: (connections, batch) in the order they run and print
CELLS = ((1, 1), (16, 1), (64, 1), (1, 32), (16, 32))
HEADLINE = (16, 1)
#: where two processes are compared: the most connections, batch 1
MANY = (64, 1)
RUNTIME = "edgekit-runtime"
RUNTIME_2W = "edgekit-runtime-2w"


@dataclass
class ServerResult:
    """One server's figures, or the error that stopped it."""

    key: str
    title: str
    workers: int = 1
    cold_starts_s: list[float] = field(default_factory=list)
    loads: dict[tuple[int, int], LoadResult] = field(default_factory=dict)
    #: server CPU seconds (whole process group) during each cell's load
    cpu_s: dict[tuple[int, int], float] = field(default_factory=dict)
    #: CPU seconds per process during the 16-connection loads: PID → (process name, seconds)
    cpu_by_process: dict[int, tuple[str, float]] = field(default_factory=dict)
    #: multi-worker servers: the busiest process's share of the group's CPU in each 16-connection run
    busiest_shares: list[float] = field(default_factory=list)
    rss_kib: int | None = None
    pss_kib: int | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    check: str = ""
    metrics: str = ""
    error: str | None = None

    @property
    def cold_start_s(self) -> float | None:
        """The median of the cold starts."""
        return statistics.median(self.cold_starts_s) if self.cold_starts_s else None

    def rps(self, cell: tuple[int, int]) -> float | None:
        """Requests per second in a cell, if it ran."""
        load = self.loads.get(cell)
        return load.rps if load and load.requests else None

    def cpu_ms_per_request(self, cell: tuple[int, int]) -> float | None:
        """Server CPU time per request (all its processes)."""
        load = self.loads.get(cell)
        return 1000.0 * self.cpu_s[cell] / load.requests if load and load.requests and cell in self.cpu_s else None

    def spread(self) -> str:
        """How the 16-connection load's CPU time split across the busy processes."""
        total = sum(s for _, s in self.cpu_by_process.values())
        if total <= 0:
            return "-"
        busy = sorted(((s / total, name) for name, s in self.cpu_by_process.values()), reverse=True)
        shown = [f"{_role(name)} {share:.0%}" for share, name in busy if share >= 0.005]  # noqa: PLR2004
        if self.busiest_shares:
            low, high = min(self.busiest_shares), max(self.busiest_shares)
            shown.append(f"busiest per run {low:.0%}-{high:.0%} ({len(self.busiest_shares)} runs)")
        return ", ".join(shown) if len(shown) > 1 else "one process"

    def to_json(self) -> dict[str, Any]:
        """Everything, serialisable."""
        return {
            "key": self.key,
            "title": self.title,
            "workers": self.workers,
            "cold_starts_s": [round(s, 4) for s in self.cold_starts_s],
            "cold_start_median_s": None if self.cold_start_s is None else round(self.cold_start_s, 4),
            "rss_mib": None if self.rss_kib is None else round(self.rss_kib / 1024, 1),
            "pss_mib": None if self.pss_kib is None else round(self.pss_kib / 1024, 1),
            "processes": self.processes,
            "cells": [
                {
                    "connections": c,
                    "batch": b,
                    **self.loads[c, b].to_json(),
                    "server_cpu_s": round(self.cpu_s.get((c, b), 0.0), 2),
                    "server_cpu_ms_per_request": _round(self.cpu_ms_per_request((c, b)), 4),
                }
                for c, b in CELLS
                if (c, b) in self.loads
            ],
            "cpu_spread_16_connections": {
                str(pid): {"process": name, "cpu_s": round(s, 2)} for pid, (name, s) in self.cpu_by_process.items()
            },
            "spread": self.spread(),
            "busiest_share_per_run": [round(x, 3) for x in self.busiest_shares],
            "check": self.check,
            "metrics": self.metrics,
            "error": self.error,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _role(name: str) -> str:
    if "spawn_main" in name:
        return "worker"
    if "resource_tracker" in name:
        return "tracker"
    return name.split(maxsplit=1)[0] if name else "?"


@dataclass(frozen=True)
class InProcess:
    """Raw ``session.run`` against the runtime's ``predict``, in one process, at one batch size."""

    batch: int
    raw_p50_us: float
    predict_p50_us: float
    raw_p99_us: float
    predict_p99_us: float
    runs: int
    same_outputs: bool

    @property
    def overhead(self) -> float:
        """How much longer ``predict`` takes than ``session.run`` at the median (0.05: 5%)."""
        return self.predict_p50_us / self.raw_p50_us - 1.0


@dataclass(frozen=True)
class Verdict:
    """One of the issue's targets, measured."""

    name: str
    goal: str
    value: str
    met: bool | None  # None: could not be measured

    @property
    def mark(self) -> str:
        """Met, MISSED or not measured."""
        return "not measured" if self.met is None else ("met" if self.met else "MISSED")


#: the goals (issue 22's, on issue 5's)
GOAL_VS_FLASK = 10.0
GOAL_VS_MLFLOW_2W = 4.0
GOAL_VS_MINIMAL_16 = 1.2
GOAL_VS_MINIMAL_1 = 1.0
GOAL_2W = 1.8
GOAL_AHEAD = 1.0
GOAL_P99_MS = 3.0
GOAL_PREDICT_OVERHEAD = 0.10
GOAL_COLD_START_S = 0.5
GOAL_RSS_MIB = 85.0


def _ratio(name: str, goal: float, ours: float | None, theirs: float | None) -> Verdict:
    if ours is None or theirs is None or theirs <= 0:
        return Verdict(name, f">= {goal:g}x", "-", None)
    ratio = ours / theirs
    return Verdict(name, f">= {goal:g}x", f"{ratio:.2f}x ({ours:,.0f} / {theirs:,.0f} req/s)", ratio >= goal)


def _at_most(name: str, goal: float, value: float | None, unit: str, shown: str | None = None) -> Verdict:
    if value is None:
        return Verdict(name, f"<= {goal:g} {unit}", "-", None)
    return Verdict(name, f"<= {goal:g} {unit}", shown or f"{value:.3g} {unit}", value <= goal)


def verdicts(servers: dict[str, ServerResult], inproc: list[InProcess]) -> list[Verdict]:
    """The goals, at 16 connections and batch 1 where they say so; two processes at 64 connections."""
    rt = servers.get(RUNTIME)

    def rps(key: str, cell: tuple[int, int] = HEADLINE) -> float | None:
        server = servers.get(key)
        return server.rps(cell) if server else None

    ours = rps(RUNTIME)
    load = rt.loads.get(HEADLINE) if rt else None
    b1 = next((r for r in inproc if r.batch == 1), None)
    rss = rt.rss_kib / 1024 if rt and rt.rss_kib else None
    two = rps(RUNTIME_2W, MANY)
    return [
        _ratio("runtime / seed Flask app, 16 conns, batch 1", GOAL_VS_FLASK, ours, rps("flask-seed")),
        _ratio("runtime / mlflow models serve -w 2, 16 conns, batch 1", GOAL_VS_MLFLOW_2W, ours, rps("mlflow-2w")),
        _ratio("runtime / minimal uvicorn + ORT, 16 conns, batch 1", GOAL_VS_MINIMAL_16, ours, rps("uvicorn-minimal")),
        _ratio(
            "runtime / minimal uvicorn + ORT, 1 conn, batch 1",
            GOAL_VS_MINIMAL_1,
            rps(RUNTIME, (1, 1)),
            rps("uvicorn-minimal", (1, 1)),
        ),
        _at_most("runtime p99, 16 conns, batch 1", GOAL_P99_MS, load.percentile_ms(99) if load else None, "ms"),
        _ratio("runtime 2 workers / 1 worker, 64 conns, batch 1", GOAL_2W, two, rps(RUNTIME, MANY)),
        _ratio("runtime 2 workers / gunicorn Flask -w 2, 64 conns", GOAL_AHEAD, two, rps("flask-gunicorn-2w", MANY)),
        _ratio("runtime 2 workers / uvicorn minimal -w 2, 64 conns", GOAL_AHEAD, two, rps("uvicorn-minimal-2w", MANY)),
        _at_most(
            "in-process predict overhead over raw session.run, batch 1",
            GOAL_PREDICT_OVERHEAD * 100,
            None if b1 is None else b1.overhead * 100,
            "%",
            None if b1 is None else f"{b1.overhead:+.1%} ({b1.predict_p50_us:.2f} vs {b1.raw_p50_us:.2f} µs)",
        ),
        _at_most(
            "runtime cold start (start to first 200), median", GOAL_COLD_START_S, rt.cold_start_s if rt else None, "s"
        ),
        _at_most("runtime RSS after the load", GOAL_RSS_MIB, rss, "MiB"),
    ]


# ---------------------------------------------------------------- printing


def _cell(server: ServerResult, cell: tuple[int, int]) -> str:
    load = server.loads.get(cell)
    if load is None or not load.requests:
        return "-"
    p50, p99 = load.percentile_ms(50), load.percentile_ms(99)
    errors = f", {load.errors + load.status_errors} errors" if load.errors or load.status_errors else ""
    return f"{load.rps:,.0f} req/s, {p50:.3g} / {p99:.3g} ms{errors}"


SERVER_COLUMNS = (
    "server",
    *(f"{c} conn{'s' if c > 1 else ''}, batch {b}: req/s, p50 / p99" for c, b in CELLS),
    "server CPU per request (16 conns, batch 1)",
    "cold start (median)",
    "RSS after load (PSS)",
    "CPU split at 16 conns",
)


def server_cells(server: ServerResult) -> list[str]:
    """One table row."""
    if server.error and not server.loads:
        return [server.title, f"error: {server.error[:160]}", *["-"] * (len(SERVER_COLUMNS) - 2)]
    cpu = server.cpu_ms_per_request(HEADLINE)
    cold = server.cold_start_s
    rss = "-" if server.rss_kib is None else f"{server.rss_kib / 1024:.0f} MiB ({(server.pss_kib or 0) / 1024:.0f})"
    return [
        server.title,
        *(_cell(server, cell) for cell in CELLS),
        "-" if cpu is None else f"{cpu:.3f} ms",
        "-" if cold is None else f"{cold:.2f} s",
        rss,
        server.spread(),
    ]


INPROC_COLUMNS = (
    "batch",
    "raw session.run p50 (µs)",
    "runtime predict p50 (µs)",
    "predict overhead",
    "p99 raw / predict (µs)",
    "outputs",
)


def inproc_cells(r: InProcess) -> list[str]:
    """One in-process row."""
    return [
        str(r.batch),
        f"{r.raw_p50_us:.2f}",
        f"{r.predict_p50_us:.2f}",
        f"{r.overhead:+.1%}",
        f"{r.raw_p99_us:.1f} / {r.predict_p99_us:.1f}",
        "equal" if r.same_outputs else "DIFFER",
    ]


def _md_table(columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]


def markdown(servers: list[ServerResult], inproc: list[InProcess], notes: list[str]) -> str:
    """The three tables in Markdown, then the notes as a list."""
    verdict_rows = [[v.name, v.goal, v.value, v.mark] for v in verdicts({s.key: s for s in servers}, inproc)]
    lines = [
        *_md_table(SERVER_COLUMNS, [server_cells(s) for s in servers]),
        "",
        *_md_table(INPROC_COLUMNS, [inproc_cells(r) for r in inproc]),
        "",
        *_md_table(("target", "goal", "measured", "verdict"), verdict_rows),
        "",
        *(f"- {n}" for n in notes),
    ]
    return "\n".join(lines)


def print_tables(servers: list[ServerResult], inproc: list[InProcess], notes: list[str], console: Console) -> None:
    """The rich tables, then the notes."""
    from rich.table import Table

    def table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
        out = Table(title=title, title_justify="left")
        for i, col in enumerate(columns):
            out.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
        for row in rows:
            out.add_row(*row)
        return out

    console.print(table("serving the digits MLP", SERVER_COLUMNS, [server_cells(s) for s in servers]))
    console.print(table("in process", INPROC_COLUMNS, [inproc_cells(r) for r in inproc]))
    rows = [[v.name, v.goal, v.value, v.mark] for v in verdicts({s.key: s for s in servers}, inproc)]
    console.print(table("targets (issues 5 and 22)", ("target", "goal", "measured", "verdict"), rows))
    for note in notes:
        console.print(note, soft_wrap=True, markup=False)
