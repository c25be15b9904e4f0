"""docs/telemetry.schema.json describes what the device really sends: windows, batches and state messages.

The payloads come from the real code: a served model's requests recorded into windows in a real outbox,
the bytes the publisher puts on the wire (its own ``_fill``, on an in-memory broker that keeps them), and
the publisher's state messages.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from edgekit_runtime import __version__
from edgekit_runtime.model import load
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.mqtt.testing import FakeBroker
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.recorder import Identity, Recorder
from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings
from edgekit_runtime.telemetry.session import window_bytes

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "docs" / "telemetry.schema.json").read_text())
DIGITS = ROOT / "examples" / "digits"


@pytest.fixture(scope="module")
def validator():
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


@pytest.fixture(scope="module")
def model(signed_bundle):
    return load(signed_bundle)


@pytest.fixture(scope="module")
def rows():
    return np.load(DIGITS / "mlp_test.npz")["input"]


def identity(model):
    """The model as ``edgekit-runtime serve`` names it in windows and state messages."""
    return {"name": model.name, "version": model.version, "sha256": model.sha256, "backend": model.backend.name}


@pytest.fixture
def telemetry(tmp_path, model):
    settings = TelemetrySettings(
        state_dir=tmp_path / "state", fleet="lab", device="pi-7", mqtt=MqttSettings("mqtt://127.0.0.1:1883")
    )
    running = Telemetry(settings, identity(model), model.reference)
    yield running
    running.stop()


def serve(telemetry, model, rows, batches):
    """Run real rows through the model and record each request as the server does."""
    start = 0
    for size in batches:
        feeds = {"input": rows[start : start + size]}
        start += size
        began = time.perf_counter()
        outputs = model.predict(feeds)
        telemetry.record(time.perf_counter() - began, inputs=feeds, first_output=next(iter(outputs.values())))


def fill_windows(telemetry, model, rows):
    """Four windows in the outbox: a busy one, an empty one, an odd one, and one of errors only."""
    serve(telemetry, model, rows, [1] * 40 + [8] * 5)  # 80 samples: PSI is computed
    telemetry.record(0.0004, error="invalid_input")
    telemetry.record(31.0, error="timeout")  # slower than the last bucket
    telemetry.recorder.close_window()
    telemetry.recorder.close_window()  # nothing happened
    odd = rows[:3].copy()
    odd[0, 5] = np.nan  # what a binary request can carry
    telemetry.record(12.0, inputs={"input": odd}, first_output=np.array([1, 1, 7]))
    telemetry.recorder.close_window()
    for kind in ("too_large", "bad_request", "client_gone", "server_error"):
        telemetry.record(0.001, error=kind)
    telemetry.recorder.close_window()


class Client:
    """What the publisher's session gave an in-memory broker that acknowledges nothing: its will, what it took."""

    def __init__(self, broker: FakeBroker, will) -> None:
        self.broker = broker
        self.will = (will.topic, will.payload, will.properties)

    @property
    def published(self) -> list[tuple[str, bytes, object]]:
        return [(m.topic, m.payload, m.properties) for m in self.broker.log]


def session_of(publisher):
    """The publisher's own per-connection code, on a connection to an in-memory broker."""
    broker = FakeBroker()
    connection = broker.connection(publisher.mqtt, will=publisher.will())
    connection.connect()
    return publisher.session(connection), Client(broker, connection.will)


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    kinds = {SCHEMA["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["schema"]["const"] for ref in SCHEMA["oneOf"]}
    assert kinds == {"edgekit.telemetry/1", "edgekit.telemetry-batch/1", "edgekit.state/1", "edgekit.event/1"}


def test_windows_as_sent_validate(validator, telemetry, model, rows):
    fill_windows(telemetry, model, rows)
    outbox = telemetry.outbox
    entries = outbox.pending()
    assert len(entries) == 4
    docs = []
    for entry in entries:
        doc = json.loads(window_bytes(entry, outbox.dropped, outbox.count))
        validator.validate(doc)
        docs.append(doc)
    busy, empty, odd, failed = docs
    # the payloads exercise what the schema allows: labels, PSI, nulls, an empty window, every error kind
    assert busy["requests"] == 47
    assert busy["errors"] == {"invalid_input": 1, "timeout": 1}
    assert busy["batch_sizes"] == {"1": 40, "8": 5}
    assert sum(busy["outputs"]["classes"].values()) == 80
    assert all(f["psi"] is not None for f in busy["inputs"][0]["features"])
    assert busy["model"] == identity(model)
    assert busy["runtime"] == {"version": __version__}
    assert busy["system"] is not None
    assert empty["requests"] == 0
    assert empty["latency_ms"]["p50"] is None
    assert empty["latency_ms"]["mean"] is None
    assert empty["inputs"] == []
    assert empty["outputs"] == {}
    assert odd["inputs"][0]["features"][5]["mean"] is None  # NaN does not survive JSON
    assert odd["inputs"][0]["features"][0]["psi"] is None  # 3 values: too few
    assert failed["requests"] == 4
    assert failed["inputs"] == []
    assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs)


def test_a_window_without_a_system_sampler_validates(validator, tmp_path, model, rows):
    with Outbox(tmp_path / "outbox.db") as outbox:
        recorder = Recorder(outbox, Identity("lab", "pi-7", identity(model), __version__), reference=model.reference)
        feeds = {"input": rows[:4]}
        recorder.record(0.002, inputs=feeds, first_output=model.predict(feeds)["label"])
        seq = recorder.close_window()
        (entry,) = outbox.pending()
        doc = json.loads(window_bytes(entry, outbox.dropped, outbox.count))
    assert doc["seq"] == seq
    assert doc["system"] is None
    validator.validate(doc)


def test_a_batch_and_a_single_window_as_the_publisher_sends_them_validate(validator, telemetry, model, rows):
    fill_windows(telemetry, model, rows)
    session, client = session_of(telemetry.publisher)
    session._fill()
    assert len(client.published) == 1
    topic, payload, _ = client.published[0]
    assert topic == "edgekit/lab/pi-7/telemetry"
    batch = json.loads(payload)
    validator.validate(batch)
    assert batch["schema"] == "edgekit.telemetry-batch/1"
    assert [w["seq"] for w in batch["windows"]] == [e.seq for e in telemetry.outbox.pending()]

    serve(telemetry, model, rows, [2, 3])
    telemetry.recorder.close_window()
    session._fill()  # one more window: sent on its own
    single = json.loads(client.published[-1][1])
    validator.validate(single)
    assert single["schema"] == "edgekit.telemetry/1"
    assert single["outbox"] == {"dropped": 0, "pending": 5}


def test_state_messages_validate(validator, telemetry):
    publisher = telemetry.publisher
    _, client = session_of(publisher)
    will_topic, will_payload, _ = client.will
    assert will_topic == "edgekit/lab/pi-7/state"
    payloads = [publisher.state_payload("online"), publisher.state_payload("offline", reason="stopped"), will_payload]
    docs = [json.loads(p) for p in payloads]
    for doc in docs:
        validator.validate(doc)
    assert [(d["status"], d.get("reason")) for d in docs] == [
        ("online", None),
        ("offline", "stopped"),
        ("offline", "lost"),
    ]
    assert docs[0]["telemetry"] == {"interval": 10.0}


def broken(doc, change):
    copied = copy.deepcopy(doc)
    change(copied)
    return copied


def test_payloads_that_break_the_format_are_refused(validator, telemetry, model, rows):
    fill_windows(telemetry, model, rows)
    outbox = telemetry.outbox
    entries = outbox.pending()
    window = json.loads(window_bytes(entries[0], outbox.dropped, outbox.count))
    other = json.loads(window_bytes(entries[1], outbox.dropped, outbox.count))
    batch = {"schema": "edgekit.telemetry-batch/1", "fleet": "lab", "device": "pi-7", "windows": [window, other]}
    state = json.loads(telemetry.publisher.state_payload("online"))
    validator.validate(window)
    validator.validate(batch)
    validator.validate(state)
    refused = [
        broken(window, lambda d: d.pop("seq")),
        broken(window, lambda d: d.pop("outbox")),
        broken(window, lambda d: d.update(extra=1)),
        broken(window, lambda d: d.update(schema="edgekit.telemetry/2")),
        broken(window, lambda d: d.update(device="pi/7")),
        broken(window, lambda d: d["errors"].update(oops=1)),
        broken(window, lambda d: d["latency_ms"].update(p99="slow")),
        broken(window, lambda d: d["inputs"][0]["features"][0].pop("psi")),
        broken(window, lambda d: d.update(system={"cpu_percent": 1.0})),
        broken(batch, lambda d: d["windows"][1].pop("seq")),
        broken(batch, lambda d: d["windows"].pop()),  # one window is sent as a window
        broken(state, lambda d: d.update(reason="lost")),  # online has no reason
        broken(state, lambda d: d.update(status="offline")),  # offline says why
        broken(state, lambda d: d.pop("since")),
    ]
    for doc in refused:
        assert not validator.is_valid(doc), doc
