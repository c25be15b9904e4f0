"""Benchmark ``edgekit-runtime serve`` against the ways people serve a model today, in one run (issue 5).

Servers (``tools/serve_apps.py``): ``edgekit-runtime serve``; the seed's Flask app as the seed writes it
(pickle + ``model.predict`` on Flask's development server); ``mlflow models serve --env-manager local``
with 1 and 2 workers; a minimal hand-written Starlette + uvicorn + ONNX Runtime app. They all serve one
fit of a scikit-learn MLP on the digits (``prepare_model``). In this process, the runtime's
``load(bundle).predict`` is timed against raw ``InferenceSession.run`` on the bundle's ONNX bytes.

How it measures:

1. in-process first, on a quiet machine: ``session.run`` and ``predict`` take turns (10 rounds) at
   batch 1 and 32, same thread count, same CPU as the servers;
2. cold start: process start to the first 200 on the predict endpoint (polled every 2 ms), ``--cold-starts``
   times per server in turns; the median is reported;
3. load: every server stays up; ``wrk`` (``tools/wrk_load.py``, one Lua script per body) loads each in turn,
   for 1, 16 and 64 keep-alive connections and batch 1 and 32, in ``--rounds`` rounds of ``--seconds/--rounds``
   each, so every server sees the same noise; req/s, p50 and p99 come from wrk's merged latency histograms;
4. around each wrk run, the CPU time of every process of the server's group (``/proc/PID/stat``): server CPU per
   request, and how the load splits across workers; after the load, RSS (and PSS) summed over the group.

By default the servers (and their ORT threads, ``--threads 1``) are pinned to CPU 0 and wrk and this process to
CPU 1 (``taskset``): on a 2-core machine the load generator then neither steals the server's core nor is
starved by it; wrk's CPU share is reported to show it is not the bottleneck. ``--no-pin`` lets the scheduler
place everything.

Needs: ``wrk`` (``apt-get install wrk``), ``flask`` (the dev extra), ``mlflow-skinny`` (which brings uvicorn,
FastAPI and Starlette), scikit-learn and skl2onnx (the dev extra), and ``edgekit-runtime`` with its server.
Usage::

    python tools/bench_serve.py [--seconds 10] [--rounds 5] [--cold-starts 3] [--servers KEY,...]
                                [--threads 1] [--server-cpus 0] [--loadgen-cpus 1] [--server-cpus-2w 0,1]
                                [--wrk-threads 1] [--no-pin]
                                [--json out/bench_serve.json] [--markdown] [--quick]

Default run: about 10 minutes (8 servers x 5 cells x 10 s, plus starts); ``--quick`` is a 2 s smoke run.
The servers of two processes (``MULTI``) are pinned to ``--server-cpus-2w`` (both cores of a 2-core machine,
which wrk then shares with them).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package: import by path
from serve_apps import KEYS, MULTI, DigitsModel, predicted_labels, prepare_model, runtime_serve_available, targets
from serve_report import CELLS, RUNTIME, InProcess, ServerResult, markdown, print_tables, verdicts
from server_process import ProcessGroups, Server, ServerError, free_port, group_cpu, group_info, request, wait_ready
from wrk_load import LoadError, LoadResult, run_wrk, write_script, wrk_path

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- in process


def _timed(fns: Sequence[Callable[[Any], object]], feeds: object, seconds: float, rounds: int = 10) -> list[np.ndarray]:
    """Per-call nanoseconds of each function, taking turns: ``rounds`` slots of equal time each."""
    for fn in fns:
        for _ in range(200):
            fn(feeds)
    times: list[list[int]] = [[] for _ in fns]
    slot = seconds / rounds / len(fns)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            out = times[i]
            deadline = clock() + int(slot * 1e9)
            while (start := clock()) < deadline:
                fn(feeds)
                out.append(clock() - start)
    return [np.asarray(t, dtype=np.float64) for t in times]


def in_process(model: DigitsModel, threads: int, seconds: float, cpus: Sequence[int] | None) -> list[InProcess]:
    """``session.run`` against ``edgekit_runtime.load(bundle).predict`` at batch 1 and 32, on the servers' CPUs."""
    import onnxruntime as ort

    import edgekit_runtime
    from edgekit_runtime.backends import BackendSettings

    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)  # before the sessions exist: their threads inherit it
    try:
        loaded = edgekit_runtime.load(
            model.bundle, edgekit_runtime.LoadOptions(backend=BackendSettings(threads=threads))
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.onnx.read_bytes(), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        raw = functools.partial(session.run, None)  # C-level: no extra Python frame against predict
        out = []
        for batch in (1, 32):
            feeds = {name: np.ascontiguousarray(model.samples[:batch], dtype=np.float32)}
            got, want = loaded.predict(feeds), raw(feeds)
            same = all(np.array_equal(got[o.name], w) for o, w in zip(session.get_outputs(), want, strict=True))
            raw_ns, predict_ns = _timed([raw, loaded.predict], feeds, seconds)
            out.append(
                InProcess(
                    batch,
                    float(np.percentile(raw_ns, 50)) / 1e3,
                    float(np.percentile(predict_ns, 50)) / 1e3,
                    float(np.percentile(raw_ns, 99)) / 1e3,
                    float(np.percentile(predict_ns, 99)) / 1e3,
                    min(len(raw_ns), len(predict_ns)),
                    same,
                )
            )
        return out
    finally:
        os.sched_setaffinity(0, before)


# ---------------------------------------------------------------- servers


class ServeBench:
    """Cold starts, then load in turns, on every server that came up; one :class:`ServerResult` each."""

    def __init__(self, model: DigitsModel, args: argparse.Namespace, say: Callable[[str], None]) -> None:
        """Write the apps and wrk scripts; nothing starts yet."""
        self.model, self.args, self.say = model, args, say
        self.ports = {key: free_port() for key in KEYS}
        self.targets = {
            k: t for k, t in targets(model, self.ports, args.threads, args.runtime_args).items() if k in args.servers
        }
        self.results = {k: ServerResult(k, t.title, t.workers) for k, t in self.targets.items()}
        if RUNTIME in self.results and (why := runtime_serve_available()):
            self.results[RUNTIME].error = why
        self.scripts = {
            (k, b): write_script(model.folder / f"{k}-b{b}.lua", t.body(model.samples[:b]))
            for k, t in self.targets.items()
            for b in (1, 32)
        }
        #: servers up for the load: key → process group
        self.running: dict[str, int] = {}

    def run(self) -> list[ServerResult]:
        """Everything, servers stopped at the end (Ctrl-C and SIGTERM included)."""
        with ProcessGroups(self.model.folder, cpus=self.args.server_cpus) as groups:
            self.say(f"cold starts: {self.args.cold_starts - 1} start/stop round(s), then the start the load runs on")
            for _ in range(self.args.cold_starts - 1):
                for key in self._live():
                    server = self._start(groups, key)
                    if server is not None:
                        groups.stop(server)
            for key in self._live():
                server = self._start(groups, key)
                if server is not None:
                    self.running[key] = server.pgid
                    self.results[key].check = self._check(key)
            self._warm_up()
            for round_no in range(self.args.rounds):
                for conns, batch in CELLS:
                    self.say(f"round {round_no + 1}/{self.args.rounds}: {conns} connection(s), batch {batch}")
                    for key in self._live():
                        self._load(key, conns, batch, self.args.seconds / self.args.rounds)
            for key, pgid in self.running.items():
                self._after_load(key, pgid)
        return [self.results[k] for k in KEYS if k in self.results]

    def _live(self) -> list[str]:
        return [k for k in self.targets if not self.results[k].error]

    def _url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.ports[key]}{self.targets[key].path}"

    def _start(self, groups: ProcessGroups, key: str) -> Server | None:
        """Start one server and time it to its first 200; ``None`` (and the error recorded) when it fails."""
        target = self.targets[key]
        cpus = self.args.multi_cpus if key in MULTI else None
        server = groups.start(key, target.argv, cwd=target.cwd, env=target.env, cpus=cpus)
        try:
            seconds, _ = wait_ready(server, self.ports[key], target.path, target.body(self.model.samples[:1]))
        except ServerError as exc:
            self.results[key].error = str(exc)
            groups.stop(server)
            return None
        self.results[key].cold_starts_s.append(seconds)
        return server

    def _check(self, key: str) -> str:
        """POST a batch of 32 and compare the labels with scikit-learn's."""
        target, want = self.targets[key], self.model.labels[:32].tolist()
        status, data = request(self.ports[key], "POST", target.path, target.body(self.model.samples[:32]))
        if status != 200:  # noqa: PLR2004
            return f"batch of 32: HTTP {status} {data[:120]!r}"
        try:
            labels = predicted_labels(data)
        except (ValueError, TypeError) as exc:
            return f"answer not understood: {exc}"
        return f"{sum(int(a == b) for a, b in zip(labels, want, strict=False))}/32 labels as scikit-learn"

    def _warm_up(self) -> None:
        for key in self._live():
            self.say(f"warm-up: {key}")
            try:
                run_wrk(self._url(key), self.scripts[key, 1], connections=16, seconds=1, cpus=self.args.loadgen_cpus)
            except LoadError as exc:
                self.results[key].error = str(exc)

    def _load(self, key: str, conns: int, batch: int, seconds: float) -> None:
        """One wrk run, with the CPU time of each of the server's processes around it."""
        result, pgid = self.results[key], self.running[key]
        before = group_cpu(pgid)
        try:
            load = run_wrk(
                self._url(key),
                self.scripts[key, batch],
                connections=conns,
                seconds=seconds,
                threads=self.args.wrk_threads,
                cpus=self.args.loadgen_cpus,
            )
        except LoadError as exc:
            result.error = str(exc)
            return
        spent = {pid: cpu - before.get(pid, 0.0) for pid, cpu in group_cpu(pgid).items()}
        cell = (conns, batch)
        result.cpu_s[cell] = result.cpu_s.get(cell, 0.0) + sum(spent.values())
        if conns > 1:
            for pid, cpu in spent.items():
                result.cpu_by_process[pid] = ("", result.cpu_by_process.get(pid, ("", 0.0))[1] + cpu)
            if result.workers > 1 and sum(spent.values()) > 0:
                result.busiest_shares.append(max(spent.values()) / sum(spent.values()))
        result.loads.setdefault(cell, LoadResult()).add(load)

    def _after_load(self, key: str, pgid: int) -> None:
        """Memory of the whole group, names of the processes that worked; the runtime's /metrics."""
        result, procs = self.results[key], group_info(pgid)
        names = {p.pid: p.name for p in procs}
        result.cpu_by_process = {pid: (names.get(pid, "exited"), s) for pid, (_, s) in result.cpu_by_process.items()}
        result.rss_kib = sum(p.rss_kib for p in procs)
        result.pss_kib = sum(p.pss_kib for p in procs)
        result.processes = [
            {"pid": p.pid, "name": p.name, "rss_mib": round(p.rss_kib / 1024, 1), "pss_mib": round(p.pss_kib / 1024, 1)}
            for p in procs
        ]
        if key in {RUNTIME, "edgekit-runtime-2w"}:
            status, data = request(self.ports[key], "GET", "/metrics")
            lines = [ln for ln in data.decode(errors="replace").splitlines() if ln and not ln.startswith("#")]
            counts = [ln for ln in lines if "requests_total" in ln] or lines[:3]
            result.metrics = f"GET /metrics after the load: HTTP {status}, {len(lines)} samples, " + "; ".join(counts)


# ---------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and package versions."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    from importlib.metadata import PackageNotFoundError, version

    def installed(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "-"

    dists = ("onnxruntime", "flask", "mlflow-skinny", "uvicorn", "starlette", "scikit-learn", "edgekit-runtime")
    versions = {dist: installed(dist) for dist in dists}
    git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
    done = subprocess.run(git, capture_output=True, text=True, check=False)
    commit = done.stdout.strip() if done.returncode == 0 else "-"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "commit": commit, **versions}


def _cpus(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options, checked; ``--quick`` and ``--no-pin`` applied."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="load per server and cell, over all rounds [10]")
    parser.add_argument("--rounds", type=int, default=5, help="turns the load is split into [5]")
    parser.add_argument("--cold-starts", type=int, default=3, help="starts per server, the median reported [3]")
    parser.add_argument("--servers", default=",".join(KEYS), help=f"comma-separated subset of {','.join(KEYS)}")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads, servers and in-process [1]")
    parser.add_argument("--server-cpus", default="0", help="CPUs the servers are pinned to [0]")
    parser.add_argument("--loadgen-cpus", default="1", help="CPUs wrk and this process are pinned to [1]")
    parser.add_argument("--server-cpus-2w", default="0,1", help="CPUs the servers of two processes are pinned to [0,1]")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads [1]")
    parser.add_argument(
        "--runtime-args", default="", help="more options for edgekit-runtime serve, e.g. '--concurrency 1'"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "bench_serve.json", help="where the JSON goes")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per cell, 1 round, 1 cold start")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.cold_starts = 2.0, 1, 1
    args.runtime_args = shlex.split(args.runtime_args)
    args.servers = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in args.servers if k not in KEYS]
    if unknown or not args.servers:
        parser.error(f"--servers: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(KEYS)}")
    if args.rounds < 1 or args.cold_starts < 1 or args.seconds <= 0:
        parser.error("--rounds and --cold-starts need 1 or more, --seconds more than 0")
    args.server_cpus = None if args.no_pin else _cpus(args.server_cpus)
    args.loadgen_cpus = None if args.no_pin else _cpus(args.loadgen_cpus)
    args.multi_cpus = None if args.no_pin else _cpus(args.server_cpus_2w)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the bench, print the tables, write the JSON."""
    from rich.console import Console

    args = parse_args(argv)
    console = Console(stderr=True, highlight=False)

    def say(msg: str) -> None:
        console.print(f"[dim]{msg}[/]")

    try:
        wrk_path()
    except LoadError as exc:
        console.print(f"error: {exc}")
        return 2
    start = time.perf_counter()
    if args.loadgen_cpus:
        os.sched_setaffinity(0, args.loadgen_cpus)  # this process polls and parses: keep it off the servers' CPU
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-serve-") as tmp:
            say("fitting the digits MLP; pickle, MLflow folder, bundle")
            model = prepare_model(Path(tmp))
            say(f"in process: session.run vs predict, {args.seconds:g} s per batch size")
            inproc = in_process(model, args.threads, args.seconds, args.server_cpus)
            servers = ServeBench(model, args, say).run()
    except KeyboardInterrupt:
        console.print("interrupted: every server was stopped")
        return 130
    total = time.perf_counter() - start
    info = machine()
    notes = _notes(servers, args, model, info, total)
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = 240
    print_tables(servers, inproc, notes, out)
    if args.markdown:
        print()
        print(markdown(servers, inproc, notes))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python tools/bench_serve.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "model": {"kind": "MLPClassifier(hidden_layer_sizes=(64,))", "train_accuracy": model.train_accuracy},
        "servers": [s.to_json() for s in servers],
        "in_process": [{**vars(r), "overhead": round(r.overhead, 4)} for r in inproc],
        "targets": [{**vars(v), "mark": v.mark} for v in verdicts({s.key: s for s in servers}, inproc)],
        "total_seconds": round(total, 1),
    }
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"[dim]total {total:.0f} s; JSON: {args.json}[/]")
    return 0


def _notes(
    servers: list[ServerResult], args: argparse.Namespace, model: DigitsModel, info: dict[str, Any], total: float
) -> list[str]:
    pin = (
        "not pinned"
        if args.no_pin
        else f"servers on CPU {','.join(map(str, args.server_cpus))}, those of two processes on CPUs "
        f"{','.join(map(str, args.multi_cpus))}, wrk and the bench on CPU {','.join(map(str, args.loadgen_cpus))} "
        "(taskset)"
    )
    setup = (
        f"commit {info['commit']}; machine: {info['cpu']}, {info['cores']} cores; "
        f"Python {info['python']}, ONNX Runtime {info['onnxruntime']}, "
        f"Flask {info['flask']}, mlflow-skinny {info['mlflow-skinny']}, uvicorn {info['uvicorn']}; {pin}; "
        f"ORT threads {args.threads}; runtime options: {shlex.join(args.runtime_args) or 'defaults'}; "
        f"wrk threads {args.wrk_threads}; {args.seconds:g} s per cell in {args.rounds} "
        f"round(s); {args.cold_starts} cold start(s) each; the run took {total:.0f} s"
    )
    notes = [
        setup,
        f"model: MLPClassifier(64,) on load_digits, seed 0, train accuracy {model.train_accuracy:.1%}",
    ]
    for s in servers:
        busiest = max((load.loadgen_cpu_share for load in s.loads.values()), default=0.0)
        line = f"{s.key}: {s.check or 'not checked'}; wrk CPU at most {busiest:.0%} of its core"
        line += f"; {s.metrics}" if s.metrics else ""
        line += f"; error: {s.error}" if s.error else ""
        notes.append(line)
    return notes


if __name__ == "__main__":
    sys.exit(main())
