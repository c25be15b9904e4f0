"""Hand-built device messages, a plain paho publisher, and polling with a deadline, for the telemetry tests."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.brokers import Mosquitto


def window(seq: int, *, fleet: str = "lab", device: str = "pi-7", **changes: Any) -> dict[str, Any]:
    """A window as docs/telemetry.md shows it, for ``seq`` (10 s windows from 1795000000)."""
    start = 1795000000.0 + 10 * (seq - 1)
    doc = {
        "seq": seq,
        "outbox": {"dropped": 0, "pending": 1},
        "schema": "edgekit.telemetry/1",
        "fleet": fleet,
        "device": device,
        "window_start": start,
        "window_end": start + 10,
        "model": {"name": "digits-cnn", "version": "1.0.0", "sha256": "9f" * 32, "backend": "onnxruntime"},
        "runtime": {"version": "0.1.0"},
        "requests": 120,
        "errors": {"invalid_input": 2},
        "batch_sizes": {"1": 118},
        "latency_ms": {  # 120 requests: their p99 interpolated is 4.7 ms, the bucket's upper bound 5.0
            "buckets": [0.5, 1.0, 2.5, 5.0],
            "counts": [0, 80, 30, 10, 0],
            "mean": 1.2,
            "p50": 1.0,
            "p90": 2.5,
            "p99": 5.0,
        },
        "inputs": [],
        "drift": False,
        "outputs": {"classes": {"3": 40, "7": 78}},
        "system": {"cpu_percent": 31.0, "temperature_c": None},
    }
    doc.update(changes)
    return doc


def batch(windows: list[dict[str, Any]], *, fleet: str = "lab", device: str = "pi-7") -> dict[str, Any]:
    """Several windows in one message."""
    return {"schema": "edgekit.telemetry-batch/1", "fleet": fleet, "device": device, "windows": windows}


def state(status: str, *, fleet: str = "lab", device: str = "pi-7") -> dict[str, Any]:
    """A state message."""
    return {"schema": "edgekit.state/1", "status": status, "fleet": fleet, "device": device, "since": 1795000000.0}


def event(
    status: str, *, command_id: str = "deploy-1", fleet: str = "lab", device: str = "pi-7", **changes: Any
) -> dict[str, Any]:
    """A command event as docs/telemetry.md shows it."""
    doc = {
        "schema": "edgekit.event/1",
        "fleet": fleet,
        "device": device,
        "id": command_id,
        "command": "deploy",
        "status": status,
        "detail": f"{status} digits-cnn 1.1.0",
        "model": {"name": "digits-cnn", "version": "1.1.0", "sha256": "9f" * 32},
        "time": 1795000000.0,
    }
    doc.update(changes)
    return doc


def topic(kind: str = "telemetry", *, fleet: str = "lab", device: str = "pi-7") -> str:
    """``edgekit/{fleet}/{device}/{kind}``."""
    return f"edgekit/{fleet}/{device}/{kind}"


def encode(doc: dict[str, Any] | bytes) -> bytes:
    """JSON bytes (bytes pass through, for malformed payloads)."""
    return doc if isinstance(doc, bytes) else json.dumps(doc).encode()


class Publisher:
    """A device stand-in: a plain paho client that publishes with QoS 1 and waits for each PUBACK."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client

    def send(self, topic_: str, doc: dict[str, Any] | bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic_, encode(doc), qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"no PUBACK for {topic_}"

    def window(self, seq: int, **kwargs: Any) -> None:
        device = kwargs.get("device", "pi-7")
        self.send(topic(device=device), window(seq, **kwargs))


@contextlib.contextmanager
def publisher(broker: Mosquitto, client_id: str = "test-device") -> Iterator[Publisher]:
    """A connected :class:`Publisher` on ``broker``."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        yield Publisher(client)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll ``check`` every 10 ms until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)
