"""Simulated devices for scale tests (issue 7): the runtime's real publisher and agent, with a stand-in model.

Many devices per process, against one broker, with the real collector storing what arrives.

    .venv/bin/python tools/fleet_sim.py --devices 200 --rate 1 --duration 60 --json out/fleet_sim.json

Starts a Mosquitto of its own on a free loopback port (or uses ``--broker``), the collector
(``edgekit telemetry collect`` into a SQLite file), and ``--processes`` worker processes that each run a share
of the devices: per device an outbox, a recorder, a publisher and an agent, exactly the runtime's classes;
each device closes a window every ``1/rate`` seconds with ``--requests`` recorded requests in it. After
``--duration`` the devices stop (a clean stop: the open window is written and drained), and the tool waits for
the collector to hold every window each device wrote. It reports windows written, stored, lost and duplicated,
how long the collector took to catch up after the last window, and the broker's and collector's CPU time.

With ``--deploy-kib N`` a third of the way in, a bundle of N KiB (random bytes: the stand-in model does not
read it) is published on the broker in 256 KiB chunks and one ``deploy`` command goes to ``@all``: every device
fetches it over MQTT with the runtime's chunk fetcher, checks each chunk and the whole, and commits, while its
telemetry goes on. The report adds how many committed and how long the slowest took.

Commands are signed as ``edgekit fleet`` signs them (issue 17): the run makes a key pair, every device opens
commands through the runtime's ``CommandGate`` trusting its public key (with a ``CommandJournal`` in the device's
state folder), and the deploy is sealed with the private key for ``@all``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit_runtime.fleet.agent import Agent
from edgekit_runtime.fleet.chunks import ChunkFetcher
from edgekit_runtime.fleet.command_journal import CommandJournal
from edgekit_runtime.fleet.deploy import Deployer
from edgekit_runtime.fleet.deploy_health import Health, HealthPolicy
from edgekit_runtime.fleet.models import ModelStore
from edgekit_runtime.fleet.signed_command import CommandGate
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.signing import load_trusted_keys
from edgekit_runtime.telemetry.mqtt import Topics
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.publisher import Publisher, PublisherSettings
from edgekit_runtime.telemetry.recorder import Identity, Recorder, RecorderSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from server_process import ProcessGroups  # noqa: E402
from telemetry_drain import Broker  # noqa: E402

FLEET = "sim"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Backend:
    name = "none"
    devices = ("cpu",)


@dataclass
class SimModel:
    """What the agent and the windows need to know of a model (no engine: this is about the network)."""

    name: str = "sim-model"
    version: str = "1.0.0"
    sha256: str = "0" * 64
    reference: dict[str, Any] | None = None
    backend: Any = field(default_factory=_Backend)
    #: no bundle file: the first deploy keeps nothing to roll back to
    path: Path | None = None
    #: no inputs: a deploy's schema check compares nothing
    inputs: tuple[Any, ...] = ()


def run_devices(args: argparse.Namespace) -> int:
    """Worker: run devices ``first`` .. ``first + count - 1`` until the duration is over; write a report."""

    class NoTraffic:
        def snapshot(self) -> Health:
            return Health(0, 0, 0.0)

    rng = random.Random(args.first)  # noqa: S311  (latencies, not secrets)
    interval = 1.0 / args.rate
    devices = []
    model = SimModel()
    trusted = load_trusted_keys([Path(args.trust)])
    identity = {"name": model.name, "version": model.version, "sha256": model.sha256, "backend": "none"}
    for i in range(args.first, args.first + args.count):
        folder = Path(args.state) / f"sim-{i:04d}"
        topics = Topics(FLEET, f"sim-{i:04d}")
        outbox = Outbox(folder / "telemetry.db")
        publisher = Publisher(
            outbox,
            MqttSettings(args.broker),
            topics,
            state={"model": identity, "runtime": {"version": "sim"}, "telemetry": {"interval": interval}},
            settings=PublisherSettings(backoff_max=2.0),
        )
        who = Identity(FLEET, topics.device, identity, "sim")
        recorder = Recorder(outbox, who, settings=RecorderSettings(interval))
        deployer = Deployer(
            ModelStore(folder / "models"),
            model,  # type: ignore[arg-type]
            open_model=lambda _path: model,  # type: ignore[arg-type,return-value]
            swap=lambda _model: None,
            probe=NoTraffic(),
            emit=lambda *_: None,
            policy=HealthPolicy(window=0),
        )
        gate = CommandGate(trusted, fleet=FLEET, journal=CommandJournal(folder))
        chunks = ChunkFetcher(publisher, FLEET, deployer.store.root)
        agent = Agent(publisher, topics, deployer, chunks=chunks, gate=gate)
        publisher.start()
        agent.start()
        devices.append((topics.device, outbox, recorder, publisher, agent))
    start = time.monotonic()
    written = dict.fromkeys((d[0] for d in devices), 0)
    tick = 0
    while time.monotonic() - start < args.duration:
        tick += 1
        for k, (name, _outbox, recorder, _publisher, _agent) in enumerate(devices):
            # devices spread over the interval, as real ones started at different times would be
            due = start + (tick - 1) * interval + interval * k / len(devices)
            time.sleep(max(0.0, due - time.monotonic()))
            for _ in range(args.requests):
                recorder.record(rng.lognormvariate(-6.5, 0.5))
            if recorder.close_window() is not None:
                written[name] += 1
    report = {}
    for name, outbox, recorder, publisher, agent in devices:
        recorder.stop(final=False)
        agent.stop()
        publisher.stop()
        report[name] = {"written": written[name], "left": outbox.count, "dropped": outbox.dropped}
        outbox.close()
    Path(args.report).write_text(json.dumps(report))
    return 0


def make_keys(folder: Path) -> tuple[Path, Path]:
    """The run's fleet key pair, ``folder/fleet.key`` and ``folder/fleet.pub`` (as ``edgekit keygen`` writes them)."""
    from edgekit.bundle.signing import generate_keypair

    return generate_keypair(folder / "fleet")


def roll_out(url: str, kib: int, devices: int, timeout: float, key: Path) -> dict[str, Any]:
    """Publish ``kib`` KiB as a chunked bundle, send ``deploy`` (signed by ``key``) to ``@all``, time every commit."""
    import hashlib

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edgekit.bundle.signing import load_private_key
    from edgekit_runtime.fleet.chunks import bundle_topic, manifest_for, mqtt_source
    from edgekit_runtime.fleet.signed_command import seal

    data = os.urandom(kib * 1024)
    sha = hashlib.sha256(data).hexdigest()
    manifest, pieces = manifest_for(data, 256 * 1024)
    base = bundle_topic(FLEET, sha)
    topics = [*(f"{base}/{i}" for i in range(len(pieces))), f"{base}/manifest"]
    finals: dict[str, tuple[str, float]] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="sim-operator", protocol=paho.MQTTv5)

    online: set[str] = set()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        doc = json.loads(message.payload) if message.payload else {}
        if message.topic.endswith("/state"):
            (online.add if doc.get("status") == "online" else online.discard)(str(doc.get("device")))
        elif doc.get("id") == "sim-deploy" and doc.get("status") in {"committed", "failed", "refused", "rolled_back"}:
            finals.setdefault(doc["device"], (doc["status"], time.monotonic()))

    client.on_message = on_message
    client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
    client.subscribe([(f"edgekit/{FLEET}/+/events", 1), (f"edgekit/{FLEET}/+/state", 1)])
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while len(online) < devices and time.monotonic() < deadline:  # a command is not retained: wait for them
            time.sleep(0.05)
        for info in [
            client.publish(t, b, qos=1, retain=True) for t, b in zip(topics, [*pieces, manifest], strict=True)
        ]:
            info.wait_for_publish(30)
        sent = time.monotonic()
        command: dict[str, Any] = {"id": "sim-deploy", "command": "deploy", "source": mqtt_source(sha), "sha256": sha}
        command["size"] = len(data)  # the fetch stops past it
        envelope = seal(command, load_private_key(key), fleet=FLEET, target="@all")
        client.publish(f"edgekit/{FLEET}/@all/cmd", envelope, qos=1).wait_for_publish(30)
        deadline = sent + timeout
        while len(finals) < devices and time.monotonic() < deadline:
            time.sleep(0.1)
        for info in [client.publish(t, b"", qos=1, retain=True) for t in topics]:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()
    times = sorted(at - sent for status, at in finals.values() if status == "committed")
    return {
        "deploy_kib": kib,
        "deploy_chunks": len(pieces),
        "deploy_committed": len(times),
        "deploy_other": sorted({status for status, _ in finals.values()} - {"committed"}),
        "deploy_p50_s": round(times[len(times) // 2], 2) if times else None,
        "deploy_slowest_s": round(times[-1], 2) if times else None,
    }


def stored(db: Path) -> dict[str, tuple[int, int, int]]:
    """Per device: (windows stored, lowest seq, highest seq)."""
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute(
                "SELECT device, COUNT(*), MIN(seq), MAX(seq) FROM telemetry WHERE fleet = ? GROUP BY device", (FLEET,)
            ).fetchall()
    except sqlite3.OperationalError:
        return {}
    return {device: (int(n), int(low), int(high)) for device, n, low, high in rows}


def start_workers(groups: ProcessGroups, args: argparse.Namespace, url: str, folder: Path, trust: Path) -> list[Any]:
    """Start ``--processes`` workers that share the devices between them; their devices trust ``trust``."""
    share = [args.devices // args.processes + (i < args.devices % args.processes) for i in range(args.processes)]
    workers, first = [], 0
    for i, count in enumerate(share):
        argv_i = [
            sys.executable,
            __file__,
            "devices",
            "--broker",
            url,
            "--first",
            str(first),
            "--count",
            str(count),
            "--state",
            str(folder / "devices"),
            "--report",
            str(folder / f"report-{i}.json"),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--requests",
            str(args.requests),
            "--trust",
            str(trust),
        ]
        workers.append(groups.start(f"devices-{i}", argv_i, cwd=folder))
        first += count
    return workers


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915  (one run, start to end)
    """Run the simulation and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    worker = sub.add_parser("devices", help="(internal) run a share of the devices")
    for p in (parser, worker):
        p.add_argument("--rate", type=float, default=1.0, help="windows per second per device [1]")
        p.add_argument("--duration", type=float, default=60.0, help="seconds the devices run [60]")
        p.add_argument("--requests", type=int, default=20, help="requests recorded per window [20]")
    parser.add_argument("--devices", type=int, default=200, help="simulated devices [200]")
    parser.add_argument("--processes", type=int, default=4, help="worker processes [4]")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--deploy-kib", type=int, default=0, help="roll out a bundle this big over MQTT [0: none]")
    worker.add_argument("--broker", required=True)
    worker.add_argument("--first", type=int, required=True)
    worker.add_argument("--count", type=int, required=True)
    worker.add_argument("--state", required=True)
    worker.add_argument("--report", required=True)
    worker.add_argument("--trust", required=True, help="the public key whose signed commands the devices take")
    args = parser.parse_args(argv)
    if args.mode == "devices":
        return run_devices(args)

    folder = Path(tempfile.mkdtemp(prefix="edgekit-fleet-sim-"))
    port = free_port()
    db = folder / "telemetry.db"
    edgekit = shutil.which("edgekit", path=str(Path(sys.executable).parent)) or "edgekit"
    url = f"mqtt://127.0.0.1:{port}"
    result: dict[str, Any] = {"command": " ".join(["python", "tools/fleet_sim.py", *(argv or sys.argv[1:])])}
    with ProcessGroups(folder) as groups:
        broker = Broker(folder, port)
        broker.start(groups)
        collector = groups.start(
            "collector",
            [edgekit, "telemetry", "collect", "--broker", url, "--db", str(db), "--client-id", "sim"],
            cwd=folder,
        )
        deadline = time.monotonic() + 30
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # subscribed
        private, public = make_keys(folder)
        began = time.monotonic()
        workers = start_workers(groups, args, url, folder, public)
        if args.deploy_kib:
            time.sleep(args.duration / 3)
            result.update(roll_out(url, args.deploy_kib, args.devices, args.duration / 2, private))
        for w in workers:
            w.proc.wait(args.duration + 120)
        finished = time.monotonic()
        report: dict[str, dict[str, int]] = {}
        for i in range(args.processes):
            report.update(json.loads((folder / f"report-{i}.json").read_text()))
        written = sum(r["written"] for r in report.values())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = stored(db)
            if sum(n for n, _, _ in counts.values()) >= written - sum(r["left"] for r in report.values()):
                break
            time.sleep(0.2)
        caught_up = time.monotonic() - finished
        counts = stored(db)
        result.update(
            devices=args.devices,
            rate=args.rate,
            duration=args.duration,
            processes=args.processes,
            seconds=round(finished - began, 1),
            written=written,
            stored=sum(n for n, _, _ in counts.values()),
            left_on_devices=sum(r["left"] for r in report.values()),
            dropped_on_devices=sum(r["dropped"] for r in report.values()),
            devices_seen=len(counts),
            gaps=sum(high - low + 1 - n for n, low, high in counts.values()),
            lost=sum(max(0, r["written"] - counts.get(d, (0, 0, 0))[0]) for d, r in report.items()),
            windows_per_second=round(written / max(finished - began, 1e-9), 1),
            collector_caught_up_s=round(caught_up, 2),
            broker_cpu_s=round(cpu_seconds(broker.server.proc.pid), 1) if broker.server else None,
            collector_cpu_s=round(cpu_seconds(collector.proc.pid), 1),
        )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    deployed = not args.deploy_kib or result["deploy_committed"] == args.devices
    return 0 if result["lost"] == 0 and result["gaps"] == 0 and deployed else 1


if __name__ == "__main__":
    sys.exit(main())
