"""The pieces of the end-to-end telemetry tests: a runtime process, a collector process, load, and polling.

Everything is real: ``edgekit-runtime serve`` with ``--mqtt``, ``edgekit telemetry collect`` into SQLite,
a Mosquitto of the test's own (``tests/brokers.py``), and HTTP requests over loopback.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.runtime.server.process import ServeProcess

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from tests.brokers import Mosquitto

FLEET = "faults"
DEVICE = "pi-1"


def runtime(bundle: Path, broker: Mosquitto, folder: Path, *extra: str, interval: float = 0.3) -> ServeProcess:
    """``edgekit-runtime serve`` with telemetry to ``broker``, its state in ``folder/state``; ready."""
    args = [
        str(bundle),
        *("--port", "0", "--mqtt", broker.url, "--fleet", FLEET, "--device", DEVICE),
        *("--state-dir", str(folder / "state"), "--telemetry-interval", str(interval)),
        *("--mqtt-reconnect-max", "1", "--log-level", "info"),
        *extra,
    ]
    server = ServeProcess(args, folder / f"runtime-{time.monotonic_ns()}.log")
    server.wait_ready()
    return server


class Collector:
    """``edgekit telemetry collect`` into a SQLite file, with a fixed client id (a persistent session).

    ``options``: instead of the fixed client id, these (``()``: the collector's defaults).
    """

    def __init__(self, broker: Mosquitto, db: Path, log: Path, options: tuple[str, ...] | None = None) -> None:
        self.db = db
        self.log = log
        command = [
            str(Path(sys.executable).parent / "edgekit"),
            *("telemetry", "collect"),
            *("--broker", broker.url, "--db", str(db)),
            *(("--client-id", f"collector-{db.stem}") if options is None else options),
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """SIGTERM, and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rows(self, device: str = DEVICE) -> list[tuple[int, int, int | None]]:
        """(seq, requests, dropped) of every stored window of ``device``, by seq."""
        if not self.db.exists():
            return []
        try:
            with sqlite3.connect(self.db, timeout=5) as db:
                return db.execute(
                    "SELECT seq, requests, dropped FROM telemetry WHERE fleet = ? AND device = ? ORDER BY seq",
                    (FLEET, device),
                ).fetchall()
        except sqlite3.OperationalError:  # the collector has not made its tables yet
            return []

    def state(self, device: str = DEVICE) -> dict | None:
        """The device's last state message as stored, or ``None``."""
        try:
            with sqlite3.connect(self.db, timeout=5) as db:
                row = db.execute(
                    "SELECT payload FROM device_state WHERE fleet = ? AND device = ?", (FLEET, device)
                ).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else json.loads(row[0])

    def subscribed(self, broker: Mosquitto, timeout: float = 30.0) -> None:
        """Wait until the collector stores a probe window (its subscription is in place)."""
        probe = {
            "seq": 1,
            "outbox": {"dropped": 0, "pending": 1},
            "schema": "edgekit.telemetry/1",
            "fleet": FLEET,
            "device": "probe",
            "window_start": time.time() - 1,
            "window_end": time.time(),
            "model": {"name": "probe", "version": "0", "sha256": "0" * 64, "backend": "none"},
            "runtime": {"version": "0"},
            "requests": 0,
            "errors": {},
            "batch_sizes": {},
            "latency_ms": {"buckets": [], "counts": [], "mean": None, "p50": None, "p90": None, "p99": None},
            "inputs": [],
            "drift": False,
            "outputs": {},
            "system": None,
        }
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()

        def stored() -> bool:  # published again until stored: before the collector subscribes, it goes nowhere
            client.publish(f"edgekit/{FLEET}/probe/telemetry", json.dumps(probe), qos=1).wait_for_publish(10)
            time.sleep(0.2)
            return bool(self.rows("probe"))

        try:
            wait_for(stored, timeout, "the collector to store the probe window", self.log)
        finally:
            client.loop_stop()
            client.disconnect()


@dataclass
class Load:
    """``/predict`` requests with real digits rows, from threads; counts what was answered 200.

    ``pause``: seconds each thread waits after each answer (0: back to back, as fast as the device answers).
    """

    url: str
    total: int
    threads: int = 2
    pause: float = 0.0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, rows: np.ndarray) -> Load:
        share = [self.total // self.threads + (i < self.total % self.threads) for i in range(self.threads)]
        for count in share:
            worker = threading.Thread(target=self._run, args=(rows, count), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, rows: np.ndarray, count: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for i in range(count):
                if self._stop.is_set():
                    return
                response = client.post("/predict", json={"features": rows[i % len(rows)].tolist()})
                with self._lock:
                    if response.status_code == 200:
                        self.done += 1
                    else:
                        self.failures.append(response.text)
                if self.pause:
                    self._stop.wait(self.pause)

    def wait(self, timeout: float = 120.0) -> int:
        for worker in self._workers:
            worker.join(timeout)
        assert not self.failures, self.failures[:3]
        return self.done

    def stop(self) -> int:
        """No new requests; wait for the ones running; what was answered (and no request may have failed)."""
        self._stop.set()
        return self.wait()

    def halt(self) -> list[str]:
        """No new requests; wait for the ones running; the failures (for a test where some are the point)."""
        self._stop.set()
        for worker in self._workers:
            worker.join(120)
        return self.failures

    @property
    def running(self) -> bool:
        return any(w.is_alive() for w in self._workers)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll ``predicate`` until it is true, or fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


def outbox_rows(state: Path) -> list[tuple[int, int]]:
    """(seq, requests) of the windows waiting in a runtime's outbox, not sent yet (read after the runtime is gone)."""
    with sqlite3.connect(state / "telemetry.db") as db:
        rows = db.execute("SELECT seq, payload FROM outbox WHERE sent IS NULL ORDER BY seq").fetchall()
    return [(int(seq), int(json.loads(payload)["requests"])) for seq, payload in rows]
