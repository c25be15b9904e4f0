"""The MQTT half of ``tools/bench_telemetry.py``: a private broker, a counting subscriber, and three drains.

- :class:`Broker`: Mosquitto on a free loopback port with a config of its own (never the machine's 1883);
- :class:`Subscriber`: this file run as a process (``python tools/telemetry_drain.py subscribe ...``) that
  counts what arrives on a topic filter, windows by ``seq`` (a batch message holds several), and prints them;
- :func:`real_window`: one window as the server's recorder writes it, after real digits requests;
- :func:`raw_paho`: the baseline, a plain paho-mqtt 2 client (MQTT 5) publishing one window per message at
  QoS 1 with the publisher's in-flight cap, timed from the first publish to the last PUBACK;
- :func:`publisher_drain`: a filled :class:`Outbox` drained by the runtime's :class:`Publisher`, timed from
  its start until the outbox is empty (every window deleted after its PUBACK);
- :func:`drains`: the raw baseline, then the publisher packing a backlog and not, in turns for some rounds,
  each counted by a subscriber; :func:`summary` gives each case's median rate and its summed losses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgekit_runtime.contract.telemetry import BATCH_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from paho.mqtt.reasoncodes import ReasonCode
    from server_process import ProcessGroups, Server

    from edgekit_runtime.telemetry.publisher import PublisherSettings

HERE = Path(__file__).resolve().parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
FLEET = "bench"


def mosquitto_version() -> str:
    """``mosquitto -h``'s first line, or why there is none."""
    if not Path(MOSQUITTO).exists():
        return "mosquitto is not installed"
    done = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


def _wait_for(what: str, ready: Any, server: Server, timeout: float) -> None:  # noqa: ANN401
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not server.alive():
            raise RuntimeError(f"{what} exited with {server.proc.returncode}: {server.log_tail()}")
        time.sleep(0.02)
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s: {server.log_tail()}")


class Broker:
    """Mosquitto on ``127.0.0.1:port`` with its own config, in a process group that ``groups`` stops."""

    def __init__(self, folder: Path, port: int) -> None:
        """Write the config; :meth:`start` starts it."""
        self.port = port
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            # the subscriber may lag behind a drain: queue everything rather than drop (and report a loss)
            "max_queued_messages 0\nmax_queued_bytes 0\n"
        )
        self.server: Server | None = None

    def start(self, groups: ProcessGroups) -> None:
        """Start it and wait until it accepts connections."""
        self.server = groups.start("mosquitto", [MOSQUITTO, "-c", str(self.config)], cwd=self.config.parent)

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
            return False

        _wait_for("mosquitto", listening, self.server, 10.0)

    def pin(self, cpus: Sequence[int] | None) -> None:
        """Move the (single-threaded) broker to ``cpus``."""
        if cpus and self.server is not None:
            os.sched_setaffinity(self.server.proc.pid, cpus)


class Subscriber:
    """A counting subscriber in a process of its own (so that it takes no GIL from what is measured)."""

    def __init__(self, groups: ProcessGroups, port: int, topic_filter: str, expect: int = 0) -> None:
        """Start it and wait for its SUBACK; with ``expect`` it exits once that many windows arrived."""
        self.groups = groups
        argv = [sys.executable, str(HERE / "telemetry_drain.py"), "subscribe", "--port", str(port)]
        argv += ["--filter", topic_filter, "--expect", str(expect)]
        self.server = groups.start("subscriber", argv, cwd=HERE)
        _wait_for("the subscriber", lambda: "READY" in self._log(), self.server, 15.0)

    def _log(self) -> str:
        return self.server.log.read_text(errors="replace") if self.server.log.exists() else ""

    def result(self, timeout: float) -> dict[str, dict[str, int]]:
        """Per topic: messages, windows (duplicates included), unique windows and their requests.

        Waits up to ``timeout`` for the expected windows, then stops the subscriber.
        """
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.server.proc.wait(timeout)
        self.groups.stop(self.server)
        for line in self._log().splitlines():
            if line.startswith("RESULT "):
                found: dict[str, dict[str, int]] = json.loads(line.removeprefix("RESULT "))
                return found
        raise RuntimeError(f"the subscriber printed no result: {self.server.log_tail()}")


def subscribe_main(argv: Sequence[str]) -> int:
    """The subscriber process: count windows per topic until ``--expect`` arrived or SIGTERM."""
    parser = argparse.ArgumentParser(prog="telemetry_drain.py subscribe")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--filter", required=True)
    parser.add_argument("--expect", type=int, default=0, help="windows after which to stop (0: until SIGTERM)")
    parser.add_argument("--lifetime", type=float, default=1800.0, help="stop after this many seconds regardless")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    counts: dict[str, dict[str, int]] = {}
    seen: dict[str, set[int]] = {}
    total = 0

    def on_message(_client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal total
        doc = orjson.loads(msg.payload)
        windows = doc["windows"] if doc.get("schema") == BATCH_SCHEMA else [doc]
        count = counts.setdefault(msg.topic, {"messages": 0, "windows": 0, "unique": 0, "requests": 0})
        seqs = seen.setdefault(msg.topic, set())
        count["messages"] += 1
        for window in windows:
            count["windows"] += 1
            if window["seq"] not in seqs:
                seqs.add(window["seq"])
                count["unique"] += 1
                count["requests"] += int(window.get("requests", 0))
                total += 1
        if args.expect and total >= args.expect:
            done.set()

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_: print("READY", flush=True)
    client.connect("127.0.0.1", args.port)
    client.subscribe(args.filter, qos=1)
    client.loop_start()
    done.wait(args.lifetime)
    client.disconnect()
    client.loop_stop()
    print("RESULT " + json.dumps(counts), flush=True)
    return 0


# ---------------------------------------------------------------- the windows and the drains


def real_window(bundle: Path, samples: Any, folder: Path, requests: int = 1000) -> bytes:  # noqa: ANN401
    """A window as the server's recorder stores it: ``requests`` digits requests (batch 1) through the model.

    Inputs are counted against the bundle's reference, labels counted, system numbers sampled.
    """
    import edgekit_runtime
    from edgekit_runtime.telemetry.outbox import Outbox
    from edgekit_runtime.telemetry.recorder import Identity, Recorder
    from edgekit_runtime.telemetry.system import SystemSampler

    model = edgekit_runtime.load(bundle)
    identity = {"name": model.name, "version": model.version, "sha256": model.sha256, "backend": model.backend.name}
    with Outbox(folder / "window.db") as outbox:
        recorder = Recorder(
            outbox,
            Identity(FLEET, "window", identity, edgekit_runtime.__version__),
            reference=model.reference,
            sampler=SystemSampler(folder),
        )
        name = model.inputs[0].name
        for i in range(requests):
            feeds = {name: samples[i % len(samples)][None]}
            start = time.perf_counter()
            out = model.predict(feeds)
            recorder.record(time.perf_counter() - start, inputs=feeds, first_output=next(iter(out.values())))
        recorder.close_window()
        return outbox.pending(1)[0].payload


@dataclass
class DrainResult:
    """One drain: how many windows went, in how many messages, how fast, and what the subscriber got."""

    case: str
    title: str
    windows: int
    seconds: float = 0.0
    messages: int = 0
    failed: int = 0
    received: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def rate(self) -> float:
        """Windows per second, broker-acknowledged."""
        return self.windows / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        """Serialisable summary."""
        unique = self.received.get("unique", 0)
        return {
            "case": self.case,
            "title": self.title,
            "windows": self.windows,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "windows_per_s": round(self.rate, 1),
            "failed": self.failed,
            "received_windows": unique,
            "received_messages": self.received.get("messages", 0),
            "duplicates": self.received.get("windows", 0) - unique,
            "lost": self.windows - unique,
            "error": self.error,
        }


def raw_payloads(window: bytes, count: int) -> list[bytes]:
    """``count`` copies of ``window`` as the publisher sends them, each with its ``seq`` (1..count)."""
    from edgekit_runtime.telemetry.outbox import Entry
    from edgekit_runtime.telemetry.session import window_bytes

    return [window_bytes(Entry(seq, 0.0, window), 0, count - seq + 1) for seq in range(1, count + 1)]


def raw_paho(port: int, payloads: list[bytes], max_inflight: int, topic: str, timeout: float) -> DrainResult:
    """Publish every payload at QoS 1 (paho's own queue, ``max_inflight`` on the wire); time to the last PUBACK."""
    result = DrainResult("raw", "raw paho-mqtt, QoS 1, one window a message", len(payloads))
    connected, finished = threading.Event(), threading.Event()
    acked = 0

    def on_publish(_c: paho.Client, _u: object, _mid: int, reason: ReasonCode, _p: object) -> None:
        nonlocal acked
        acked += 1
        result.failed += int(reason.is_failure)
        if acked == len(payloads):
            finished.set()

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(max_inflight)
    client.on_connect = lambda *_: connected.set()
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    try:
        if not connected.wait(10.0):
            result.error = "no CONNACK in 10 s"
            return result
        start = time.perf_counter()
        for payload in payloads:
            client.publish(topic, payload, qos=1)
        if not finished.wait(timeout):
            result.error = f"{acked} of {len(payloads)} PUBACKs in {timeout:.0f} s"
        result.seconds = time.perf_counter() - start
        result.messages = len(payloads)
    finally:
        client.disconnect()
        client.loop_stop()
    return result


def fill_outbox(path: Path, window: bytes, count: int) -> float:
    """Append ``count`` windows to a new outbox at ``path`` (durably, one by one); appends per second."""
    from edgekit_runtime.telemetry.outbox import Outbox

    with Outbox(path, outbox_limits(count * len(window))) as outbox:
        start = time.perf_counter()
        for _ in range(count):
            outbox.append(window)
        return count / (time.perf_counter() - start)


def outbox_limits(payload_bytes: int) -> Any:  # noqa: ANN401
    """Bounds that keep ``payload_bytes`` (the default 64 MiB would drop the oldest windows of a big backlog)."""
    from edgekit_runtime.telemetry.outbox import OutboxLimits

    return OutboxLimits(max_bytes=max(64 << 20, 2 * payload_bytes))


def publisher_drain(
    template: Path, port: int, settings: PublisherSettings, *, case: str, title: str, timeout: float
) -> DrainResult:
    """Copy the filled outbox ``template``, start a :class:`Publisher` on it, time until the outbox is empty."""
    from edgekit_runtime.mqtt.settings import MqttSettings
    from edgekit_runtime.telemetry.mqtt import Topics
    from edgekit_runtime.telemetry.outbox import Outbox
    from edgekit_runtime.telemetry.publisher import Publisher

    path = template.with_name(f"{case}.db")
    shutil.copyfile(template, path)
    with Outbox(path, outbox_limits(path.stat().st_size)) as outbox:
        result = DrainResult(case, title, outbox.count)
        publisher = Publisher(outbox, MqttSettings(f"mqtt://127.0.0.1:{port}"), Topics(FLEET, case), settings=settings)
        start = time.perf_counter()
        publisher.start()
        try:
            while outbox.count and time.perf_counter() - start < timeout:
                time.sleep(0.002)
            result.seconds = time.perf_counter() - start
        finally:
            publisher.stop()
        if outbox.count:
            result.error = f"{outbox.count} windows still in the outbox after {timeout:.0f} s"
        result.messages = publisher.stats.messages
        if publisher.stats.connects != 1:
            result.error += f" ({publisher.stats.connects} connections: {publisher.stats.last_error})"
    return result


def drains(
    broker: Broker,
    groups: ProcessGroups,
    bundle: Path,
    samples: Any,  # noqa: ANN401
    folder: Path,
    *,
    windows: int,
    rounds: int,
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Raw paho, then the publisher packing and not, in turns, each counted by a subscriber; and the setup."""
    from edgekit_runtime.telemetry.publisher import PublisherSettings

    n, inflight, timeout = windows, PublisherSettings().max_inflight, max(60.0, windows / 100)
    say("drain: recording a real window (1,000 digits requests)")
    window = real_window(bundle, samples, folder)
    say(f"drain: filling an outbox with {n} windows of {len(window):,} bytes")
    template = folder / "template.db"
    append_rate = fill_outbox(template, window, n)

    def raw() -> DrainResult:
        return raw_paho(broker.port, raw_payloads(window, n), inflight, f"edgekit/{FLEET}/raw/telemetry", timeout)

    def packed() -> DrainResult:
        title, settings = "outbox + Publisher (packs a backlog)", PublisherSettings()
        return publisher_drain(template, broker.port, settings, case="packed", title=title, timeout=timeout)

    def unpacked() -> DrainResult:
        title, settings = "outbox + Publisher, pack_windows=1", PublisherSettings(pack_windows=1)
        return publisher_drain(template, broker.port, settings, case="unpacked", title=title, timeout=timeout)

    results: dict[str, list[DrainResult]] = {"raw": [], "packed": [], "unpacked": []}
    for round_no in range(rounds):
        for case, run in (("raw", raw), ("packed", packed), ("unpacked", unpacked)):
            say(f"drain, round {round_no + 1}/{rounds}: {case}, {n} windows")
            topic = f"edgekit/{FLEET}/{case}/telemetry"
            subscriber = Subscriber(groups, broker.port, topic, expect=n)
            result = run()
            result.received = subscriber.result(timeout=timeout).get(topic, {})
            results[case].append(result)
    setup = {"window_bytes": len(window), "append_per_s": round(append_rate, 1), "max_inflight": inflight}
    return [summary(r) for r in results.values()], setup


def summary(rounds: list[DrainResult]) -> dict[str, Any]:
    """One case over its rounds: the median rate (and each round's), and every loss and duplicate summed."""
    each = [r.to_json() for r in rounds]
    rates = [r["windows_per_s"] for r in each]
    return {
        **each[0],
        "windows_per_s": statistics.median(rates),
        "rate_by_round": rates,
        "seconds": statistics.median(r["seconds"] for r in each),
        "messages": statistics.median(r["messages"] for r in each),
        "received_windows": min(r["received_windows"] for r in each),
        **{key: sum(r[key] for r in each) for key in ("failed", "duplicates", "lost")},
        "error": "; ".join(r["error"] for r in each if r["error"]),
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["subscribe"]:
        sys.exit("usage: telemetry_drain.py subscribe --port PORT --filter TOPIC [--expect N]")
    sys.exit(subscribe_main(sys.argv[2:]))
