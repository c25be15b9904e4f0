"""Benchmark what telemetry costs (issue 6), in one run, against baselines measured in the same run.

1. Serving: ``edgekit-runtime serve`` on the digits MLP bundle with ``--no-telemetry`` (``off``), with telemetry
   to the outbox only (``on``: ``--state-dir``) and with telemetry sent to a private Mosquitto (``mqtt``: also
   ``--mqtt``); both telemetry variants cut a window every ``--interval`` seconds (default 1, so that several
   windows are written and sent during each load). The three servers start together, are warmed up for 1 s
   each and stay up; wrk loads one at a time on ``/predict`` (16 connections, one digits row per request) for
   ``--duration`` seconds, the variants taking turns for ``--rounds`` rounds, the order rotating each round, so
   that short turns share the machine's noise (the idle servers' telemetry threads keep running, as they would
   on a device). At the end SIGTERM stops them (the last window is written and sent). Reported: the median req/s per
   variant and on/off, mqtt/off (the issue's target: >= 95%), p50/p99 over all rounds, the server's CPU time per
   request, and that telemetry counted the requests (windows in the outbox; windows the subscriber received).
2. Drain (``tools/telemetry_drain.py``): ``--windows`` copies of a real window (recorded from digits requests)
   go to the same broker (a) from a plain paho-mqtt 2 client at QoS 1, one window a message, with the
   publisher's in-flight cap, timed to the last PUBACK; (b) from a filled outbox drained by the runtime's
   ``Publisher`` (which packs a backlog into batch messages), timed until the outbox is empty; (c) the same
   with ``pack_windows=1``; the three take turns for ``--drain-rounds`` rounds, the median rate reported. A
   subscriber process counts the windows that arrive, by ``seq``, and losses are summed over the rounds.

Pinning (as ``tools/bench_serve.py``): servers on ``--server-cpus`` (0), wrk, this process, the broker and the
serving subscriber on ``--loadgen-cpus`` (1); for the drain the broker and its subscriber move to the servers'
CPU, so the publishing side has CPU 1 to itself. Needs ``wrk`` (``apt-get install wrk``) and ``mosquitto``.
Usage::

    python tools/bench_telemetry.py [--duration 3] [--rounds 10] [--windows 20000] [--drain-rounds 3]
                                    [--interval 1] [--connections 16] [--no-pin] [--json out/bench_telemetry.json]
                                    [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package: import by path
import telemetry_drain as mq
from serve_apps import features_body
from server_process import ProcessGroups, ServerError, free_port, group_cpu, wait_ready
from telemetry_drain import FLEET, Broker, Subscriber, mosquitto_version
from wrk_load import LoadError, LoadResult, merged, run_wrk, write_script, wrk_path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DIGITS = ROOT / "examples" / "digits"
VARIANTS = {"off": "--no-telemetry", "on": "telemetry, outbox only", "mqtt": "telemetry + MQTT"}
TARGET = 0.95


def say(msg: str) -> None:
    """Progress, on stderr."""
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Variant:
    """One serving variant over all its rounds."""

    key: str
    loads: list[LoadResult] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    #: requests wrk completed (warm-up included), and what telemetry counted in its windows
    sent: int = 0
    counted: int = 0
    windows: int = 0
    left_in_outbox: int = 0

    @property
    def rps(self) -> list[float]:
        """req/s of each round."""
        return [load.rps for load in self.loads]

    @property
    def median_rps(self) -> float:
        """Median req/s over the rounds."""
        return statistics.median(self.rps) if self.loads else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU time (every thread) per request under load."""
        requests = sum(load.requests for load in self.loads)
        return 1000.0 * sum(self.cpu_s) / requests if requests else 0.0

    @property
    def cpu_share(self) -> float:
        """Server CPU seconds per second of load (1.0: its core was all its own and all busy)."""
        seconds = sum(load.seconds for load in self.loads)
        return sum(self.cpu_s) / seconds if seconds else 0.0

    def to_json(self, off: Variant) -> dict[str, Any]:
        """Serialisable summary, with ratios against ``off`` (the median's and each round's)."""
        return {
            "variant": self.key,
            "title": VARIANTS[self.key],
            "median_rps": round(self.median_rps, 1),
            "rps_by_round": [round(r, 1) for r in self.rps],
            "ratio_to_off": round(self.median_rps / off.median_rps, 4) if off.median_rps else None,
            "ratio_by_round": [round(a / b, 4) for a, b in zip(self.rps, off.rps, strict=False) if b],
            "cpu_ms_per_request": round(self.cpu_ms_per_request, 4),
            # requests per server CPU second against off's: the cost, with the time the core was not ours left out
            "cpu_ratio_to_off": round(off.cpu_ms_per_request / max(self.cpu_ms_per_request, 1e-9), 4),
            "cpu_ms_by_round": [
                round(1000 * c / max(x.requests, 1), 4) for c, x in zip(self.cpu_s, self.loads, strict=True)
            ],
            "cpu_share": round(self.cpu_share, 3),
            "load": merged(self.loads).to_json(),
            "requests_sent": self.sent,
            "requests_counted": self.counted,
            "windows": self.windows,
            "left_in_outbox": self.left_in_outbox,
        }


def stored_windows(state: Path) -> tuple[int, int]:
    """Windows in a stopped server's outbox and the requests they count."""
    from edgekit_runtime.telemetry.outbox import Outbox

    path = state / "telemetry.db"
    if not path.exists():
        return 0, 0
    with Outbox(path) as outbox:
        entries = outbox.pending(1 << 30)
    return len(entries), sum(int(json.loads(e.payload).get("requests", 0)) for e in entries)


class ServingBench:
    """The three servers up together, loaded in turns (the order rotating each round), then stopped."""

    def __init__(self, args: argparse.Namespace, folder: Path, bundle: Path, broker: str) -> None:
        """Write the wrk script; nothing starts yet."""
        self.args, self.folder, self.bundle, self.broker = args, folder, bundle, broker
        self.body = features_body(np.load(DIGITS / "mlp_test.npz")["input"][:1])
        self.script = write_script(folder / "predict.lua", self.body)
        self.results = {key: Variant(key) for key in VARIANTS}
        self.ports = {key: free_port() for key in VARIANTS}

    def argv(self, key: str) -> list[str]:
        """``edgekit-runtime serve`` as each variant starts it."""
        argv = [str(BIN / "edgekit-runtime"), "serve", str(self.bundle), "--host", "127.0.0.1"]
        argv += ["--port", str(self.ports[key]), "--threads", str(self.args.threads)]
        if key == "off":
            return [*argv, "--no-telemetry"]
        argv += ["--state-dir", str(self.folder / f"state-{key}"), "--telemetry-interval", f"{self.args.interval:g}"]
        argv += ["--fleet", FLEET, "--device", f"serve-{key}"]
        return [*argv, "--mqtt", self.broker] if key == "mqtt" else argv

    def run(self, groups: ProcessGroups, subscriber: Subscriber) -> dict[str, Variant]:
        """Start, warm up, every round, stop; then count the windows (outbox, subscriber)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        servers = {key: groups.start(key, self.argv(key), cwd=self.folder, env=env) for key in VARIANTS}
        for key, server in servers.items():
            wait_ready(server, self.ports[key], "/predict", self.body)
            self.results[key].sent += self._wrk(key, 1).requests + 1  # warm-up, and the readiness probe
        keys = list(VARIANTS)
        for round_no in range(self.args.rounds):
            say(f"serving, round {round_no + 1}/{self.args.rounds}")
            for key in keys[round_no % len(keys) :] + keys[: round_no % len(keys)]:
                before = group_cpu(servers[key].pgid)
                load = self._wrk(key, self.args.duration)
                cpu = sum(s - before.get(pid, 0.0) for pid, s in group_cpu(servers[key].pgid).items())
                if load.errors or load.status_errors:
                    raise LoadError(f"{key}: wrk saw {load.errors} socket errors, {load.status_errors} non-2xx answers")
                self.results[key].loads.append(load)
                self.results[key].cpu_s.append(cpu)
                self.results[key].sent += load.requests
        for server in servers.values():
            groups.stop(server)  # SIGTERM: the last window is written (and, with a broker, sent)
        on, mqtt = self.results["on"], self.results["mqtt"]
        on.windows, on.counted = stored_windows(self.folder / "state-on")
        mqtt.left_in_outbox = stored_windows(self.folder / "state-mqtt")[0]
        got = subscriber.result(timeout=1.0).get(f"edgekit/{FLEET}/serve-mqtt/telemetry", {})
        mqtt.windows, mqtt.counted = got.get("unique", 0), got.get("requests", 0)
        return self.results

    def _wrk(self, key: str, seconds: int) -> LoadResult:
        url = f"http://127.0.0.1:{self.ports[key]}/predict"
        return run_wrk(
            url, self.script, connections=self.args.connections, seconds=seconds, cpus=self.args.loadgen_cpus
        )


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """CPU model, cores, versions, commit."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
    commit = subprocess.run(git, capture_output=True, text=True, check=False)
    wrk = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    wrk_lines = (wrk.stdout or wrk.stderr).strip().splitlines()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "paho-mqtt": version("paho-mqtt"),
        "mosquitto": mosquitto_version(),
        "wrk": " ".join(wrk_lines[0].split()[:2]) if wrk_lines else "-",
        "edgekit-runtime": version("edgekit-runtime"),
        "commit": commit.stdout.strip() if commit.returncode == 0 else "-",
    }


def _serving_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for v in report["serving"]:
        ratio, counted, cpu = "—", "—", f"{v['cpu_ms_per_request']:.3f} ms"
        if v["variant"] != "off":
            ratio = f"{v['ratio_to_off']:.3f} ({', '.join(f'{r:.3f}' for r in v['ratio_by_round'])})"
            cpu += f" ({v['cpu_ratio_to_off']:.3f})"
            where = "in the outbox" if v["variant"] == "on" else f"received, {v['left_in_outbox']} left in the outbox"
            counted = f"{v['windows']} windows {where}; {v['requests_counted']:,} of {v['requests_sent']:,} requests"
        rps = ", ".join(f"{r:,.0f}" for r in v["rps_by_round"])
        load = v["load"]
        rows.append(
            f"| {v['title']} | {v['median_rps']:,.0f} ({rps}) | {ratio} | {load['p50_ms']} / {load['p99_ms']} "
            f"| {cpu} | {v['cpu_share']:.2f} | {counted} |"
        )
    return rows


def _drain_rows(report: dict[str, Any]) -> list[str]:
    raw = next((r["windows_per_s"] for r in report["drain"] if r["case"] == "raw"), 0.0)
    rows = []
    for r in report["drain"]:
        vs = f"{r['windows_per_s'] / raw:.2f}x" if raw else "—"
        error = f" {r['error']}" if r["error"] else ""
        rates = ", ".join(f"{x:,.0f}" for x in r["rate_by_round"])
        rows.append(
            f"| {r['title']} | {r['windows']:,} | {r['messages']:,.0f} | {r['seconds']:.2f} "
            f"| {r['windows_per_s']:,.0f} ({rates}) "
            f"| {vs} | {r['received_windows']:,} ({r['lost']}, {r['duplicates']}){error} |"
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The tables and notes, as Markdown."""
    info, s, d = report["machine"], report["settings"], report["drain_setup"]
    machine_line = (
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, paho-mqtt {info['paho-mqtt']}, "
        f"{info['mosquitto']}, {info['wrk']}; commit {info['commit']}; {report['pinning']}; "
        f"the run took {report['total_seconds']:.0f} s; load average before {' '.join(report['loadavg']['before'])}, "
        f"after {' '.join(report['loadavg']['after'])}."
    )
    serving_line = (
        f"Serving: {s['connections']} connections, {s['duration']} s per run, {s['rounds']} round(s), "
        f"telemetry windows every {s['interval']:g} s."
    )
    drain_line = (
        f"Drain: {s['drain_rounds']} round(s) of {s['windows']:,} windows of {d['window_bytes']:,} bytes each (a "
        f"real window: 1,000 digits requests, per-feature statistics), in-flight cap {d['max_inflight']}; filling "
        f"the outbox ran at "
        f"{d['append_per_s']:,.0f} durable appends/s."
    )
    head = "| variant | req/s, median (rounds) | vs off: median (rounds) | p50 / p99 ms | server CPU per request "
    head += "(requests per CPU-s vs off) | server CPU share | telemetry counted |"
    lines = [f"Command: `{report['command']}`", machine_line, "", serving_line, "", head]
    lines += ["|---|---|---|---|---|---|---|", *_serving_rows(report), "", drain_line, ""]
    lines += [
        "| case | windows | messages | seconds | windows/s, median (rounds) | vs raw | received (lost, duplicates) |"
    ]
    lines += ["|---|---|---|---|---|---|---|", *_drain_rows(report), ""]
    lines += ["| target | goal | median req/s | median of per-round ratios | requests per server CPU-s | verdict |"]
    lines += ["|---|---|---|---|---|---|"]
    for t in report["targets"]:
        verdict = "met" if t["met"] else "**missed**"
        lines.append(
            f"| {t['what']} | ≥ {t['goal']:.0%} | {t['measured']:.1%} | {t['paired']:.1%} | {t['per_cpu']:.1%} "
            f"| {verdict} (by median req/s) |"
        )
    return "\n".join(lines)


def _text(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


def _cpus(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options, with ``--quick``'s defaults for those not given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, help="seconds of load per run [3; --quick 1]")
    parser.add_argument("--rounds", type=int, help="rounds of the three variants [10; --quick 2]")
    parser.add_argument("--windows", type=int, help="windows per drain case [20000; --quick 300]")
    parser.add_argument("--drain-rounds", type=int, help="rounds of the three drain cases [3; --quick 1]")
    parser.add_argument("--interval", type=float, default=1.0, help="telemetry window, seconds [1]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [16]")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the server [1]")
    parser.add_argument("--server-cpus", default="0", help="CPUs the servers are pinned to [0]")
    parser.add_argument("--loadgen-cpus", default="1", help="CPUs wrk, the broker and this process are pinned to [1]")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "bench_telemetry.json", help="where the JSON goes")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s runs, 2 rounds, 300 windows, 1 drain round"
    )
    args = parser.parse_args(argv)
    for name, full, quick in (("duration", 3, 1), ("rounds", 10, 2), ("windows", 20000, 300), ("drain_rounds", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if min(args.duration, args.rounds, args.windows, args.drain_rounds, args.connections) < 1:
        parser.error("--duration, --rounds, --windows, --drain-rounds and --connections need 1 or more")
    args.server_cpus = None if args.no_pin else _cpus(args.server_cpus)
    args.loadgen_cpus = None if args.no_pin else _cpus(args.loadgen_cpus)
    allowed = os.sched_getaffinity(0)
    if any(c not in allowed for c in (args.server_cpus or []) + (args.loadgen_cpus or [])):
        parser.error(
            f"--server-cpus/--loadgen-cpus name CPUs this process cannot use ({sorted(allowed)}): use --no-pin"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run both parts, print the Markdown, write the JSON."""
    args = parse_args(argv)
    command = " ".join(["python tools/bench_telemetry.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        wrk_path()
    except LoadError as exc:
        say(f"error: {exc}")
        return 2
    if not mosquitto_version().startswith("mosquitto version"):
        say("error: mosquitto is not installed: apt-get install mosquitto")
        return 2
    start, loadavg = time.perf_counter(), Path("/proc/loadavg").read_text().split()[:3]
    if args.loadgen_cpus:
        os.sched_setaffinity(0, args.loadgen_cpus)  # this process publishes in the drain: keep it off the servers' CPU
    try:
        serving, drains, drain_setup = run(args)
    except (ServerError, LoadError, RuntimeError) as exc:
        say(f"error: {exc}")
        return 1
    off = serving["off"]
    rows = {k: serving[k].to_json(off) for k in VARIANTS}
    targets = [
        {"what": f"{VARIANTS[k]} / {VARIANTS['off']}", "goal": TARGET, "measured": v["ratio_to_off"],
         "paired": statistics.median(v["ratio_by_round"]), "per_cpu": v["cpu_ratio_to_off"],
         "met": v["ratio_to_off"] >= TARGET}
        for k, v in rows.items() if k != "off"
    ]  # fmt: skip
    pin = "not pinned"
    if not args.no_pin:
        pin = f"servers on CPU {_text(args.server_cpus)}, wrk, broker and bench on CPU {_text(args.loadgen_cpus)}"
    report = {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "pinning": pin,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "serving": list(rows.values()),
        "drain": drains,
        "drain_setup": drain_setup,
        "targets": targets,
        "total_seconds": round(time.perf_counter() - start, 1),
        "loadavg": {"before": loadavg, "after": Path("/proc/loadavg").read_text().split()[:3]},
    }
    print(markdown(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    say(f"JSON: {args.json}")
    return 0


def run(args: argparse.Namespace) -> tuple[dict[str, Variant], list[dict[str, Any]], dict[str, Any]]:
    """Bundle, broker, serving, drain; every process stopped at the end, however it ends."""
    with (
        tempfile.TemporaryDirectory(prefix="edgekit-bench-telemetry-") as tmp,
        ProcessGroups(Path(tmp), cpus=args.loadgen_cpus) as side,
        ProcessGroups(Path(tmp), cpus=args.server_cpus) as servers,
    ):
        folder = Path(tmp)
        say("packing the digits MLP bundle")
        bundle = pack_bundle(folder)
        broker = Broker(folder, free_port())
        broker.start(side)
        subscriber = Subscriber(side, broker.port, f"edgekit/{FLEET}/+/telemetry")
        serving = ServingBench(args, folder, bundle, f"mqtt://127.0.0.1:{broker.port}").run(servers, subscriber)
        samples = np.load(DIGITS / "mlp_test.npz")["input"]
        broker.pin(args.server_cpus)  # the publishing side (this process) then has its CPU to itself
        drains, drain_setup = mq.drains(
            broker, servers, bundle, samples, folder, windows=args.windows, rounds=args.drain_rounds, say=say
        )
    return serving, drains, drain_setup


def pack_bundle(folder: Path) -> Path:
    """``edgekit bundle pack`` of the digits MLP, with its calibration (the drift reference) and test data."""
    mlp = DIGITS / "mlp"
    cmd = [str(BIN / "edgekit"), "bundle", "pack", f"{mlp}.onnx", "--calib", f"{mlp}_calib.npz"]
    cmd += ["--eval", f"{mlp}_test.npz", "--name", "digits-mlp", "-o", str(folder / "bundle")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"edgekit bundle pack failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return next((folder / "bundle").glob("*.edgebundle"))


if __name__ == "__main__":
    sys.exit(main())
