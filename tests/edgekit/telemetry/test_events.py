"""Command events: parsed and refused, described by the schema and the docs, and stored by the real collector."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from edgekit.errors import TelemetryError
from edgekit.telemetry.collector import Collector, CollectorSettings
from edgekit.telemetry.messages import EVENT_STATUSES, parse_message
from edgekit.telemetry.store import open_store
from tests.edgekit.telemetry.sample import encode, event, publisher, topic, wait_until

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "docs" / "telemetry.schema.json").read_text(encoding="utf-8"))
DOC = ROOT / "docs" / "telemetry.md"


def parse(doc, topic_=None):
    return parse_message(topic_ or topic("events"), encode(doc), received=1795000100.0)


@pytest.fixture(scope="module")
def validator():
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


def test_an_event_becomes_one_row():
    parsed = parse(event("switching", time=1795000012.5))
    assert parsed.windows == ()
    assert parsed.state is None
    row = parsed.event
    assert row is not None
    assert (row.fleet, row.device, row.id, row.command, row.status) == (
        "lab",
        "pi-7",
        "deploy-1",
        "deploy",
        "switching",
    )
    assert (row.time, row.received, row.detail) == (1795000012.5, 1795000100.0, "switching digits-cnn 1.1.0")
    assert json.loads(row.payload) == event("switching", time=1795000012.5)


def test_detail_may_be_missing_and_model_null():
    doc = event("done", command="status", model=None)
    del doc["detail"]
    row = parse(doc).event
    assert row is not None
    assert (row.command, row.detail) == ("status", "")


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({**event("received"), "schema": "edgekit.state/1"}, "schema"),
        (event("received", id=""), "id"),
        (event("received", id=7), "id"),
        (event("received", id="x" * 129), "id"),
        (event("received", command="reboot"), "command"),
        (event("installing"), "status"),
        ({**event("received"), "status": None}, "status"),
        (event("received", time="now"), "time"),
        (event("received", time=None), "time"),
        (event("received", detail=3), "detail"),
        (event("received", model="digits"), "model"),
        (event("received", model={"name": 1}), "model.name"),
        (event("received", device="pi-8"), "device 'pi-8' in the payload does not match"),
        (event("received", detail="a\u0000b"), "NUL"),
    ],
)
def test_bad_events_are_refused(doc, words):
    with pytest.raises(TelemetryError) as caught:
        parse(doc)
    assert words in str(caught.value)
    assert str(caught.value).startswith("edgekit/lab/pi-7/events")


def test_an_event_on_another_topic_is_refused_and_a_window_on_events_too():
    with pytest.raises(TelemetryError, match="schema"):
        parse(event("received"), topic("telemetry"))
    with pytest.raises(TelemetryError, match=r"edgekit\.event/1"):
        parse({"schema": "edgekit.telemetry/1"}, topic("events"))


def test_every_status_and_command_is_in_the_schema(validator):
    for status in EVENT_STATUSES:
        assert validator.is_valid(event(status)), status
        assert parse(event(status)).event is not None
    for command in ("deploy", "rollback", "set-config", "status", "rebirth", "unknown"):
        assert validator.is_valid(event("done", command=command, model=None))
        assert parse(event("done", command=command)).event.command == command
    assert not validator.is_valid(event("installing"))
    assert not validator.is_valid(event("received", model={"name": "m", "version": "1", "sha256": "short"}))
    assert not validator.is_valid({**event("received"), "extra": 1})


def test_the_docs_example_is_valid_and_parses(validator):
    text = DOC.read_text(encoding="utf-8").split("### Events", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)```", text, flags=re.DOTALL).group(1))
    validator.validate(example)
    row = parse(example, topic("events", fleet=example["fleet"], device=example["device"])).event
    assert row is not None
    assert (row.id, row.status) == ("deploy-20261118-1", "switching")


def test_the_collector_stores_events_once(mosquitto, tmp_path):
    path = tmp_path / "telemetry.db"
    settings = CollectorSettings(broker=mosquitto.url, reconnect_min=0.05, reconnect_max=0.5)
    with open_store(path) as store, Collector(settings, store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for i, status in enumerate(("received", "fetching", "switching")):
                device.send(topic("events"), event(status, time=1795000000.0 + i))
            device.send(topic("events"), event("fetching", time=1795000001.0))  # a redelivery
            device.send(topic("events", device="pi-8"), event("refused", device="pi-8", time=1795000003.0))
            device.send(topic("events"), event("installing"))
        wait_until(lambda: collector.counts.received == 6, what="6 messages")
        wait_until(lambda: collector.counts.events + collector.counts.duplicate_events == 5, what="5 events handled")
        wait_until(lambda: collector.counts.rejected == 1, what="the bad event rejected")
        counts = collector.counts
        assert (counts.events, counts.duplicate_events, counts.stored) == (4, 1, 0)
        steps = store.latest_events()
    assert [(s.device, s.id, s.status) for s in steps] == [
        ("pi-7", "deploy-1", "switching"),
        ("pi-8", "deploy-1", "refused"),
    ]
    assert steps[0].model == {"name": "digits-cnn", "version": "1.1.0", "sha256": "9f" * 32}


def test_a_share_group_splits_events_too(mosquitto, tmp_path):
    stores = [open_store(tmp_path / f"c{i}.db") for i in (1, 2)]
    collectors = [
        Collector(CollectorSettings(broker=mosquitto.url, share="g", client_id=f"c{i}"), store)
        for i, store in enumerate(stores, 1)
    ]
    try:
        for collector in collectors:
            collector.start()
            assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for i in range(20):
                device.send(topic("events"), event("received", command_id=f"cmd-{i}"))
        wait_until(lambda: sum(c.counts.events for c in collectors) == 20, what="20 events between the two")
        assert all(c.counts.events for c in collectors)
    finally:
        for collector in collectors:
            collector.stop()
        for store in stores:
            store.close()


def test_a_refusal_of_a_command_the_device_could_not_read_is_stored():
    """An unsigned or unknown command is refused with command 'unknown': the operator sees why in the database."""
    stored = parse(event("refused", command="unknown", detail="commands must be signed")).event
    assert (stored.command, stored.status) == ("unknown", "refused")


def test_the_statuses_are_the_runtimes_own():
    from edgekit_runtime.contract.statuses import Phase

    assert (*(p.value for p in Phase), "done") == EVENT_STATUSES
