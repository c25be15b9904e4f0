"""Parsing one MQTT message into rows: windows, batches, states, and what is refused."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import TelemetryError
from edgekit.telemetry.messages import parse_message, parse_topic
from tests.edgekit.telemetry.sample import batch, encode, state, topic, window


def parse(doc, topic_=None):
    return parse_message(topic_ or topic(), encode(doc), received=1795000100.0)


def test_a_window_becomes_one_row_with_what_show_needs():
    (row,) = parse(window(42, errors={"invalid_input": 2, "timeout": 1}, drift=True)).windows
    assert (row.fleet, row.device, row.seq) == ("lab", "pi-7", 42)
    assert row.window_start == 1795000410.0
    assert row.window_end == 1795000420.0
    assert row.received == 1795000100.0
    assert (row.requests, row.errors, row.p99, row.drift) == (120, 3, 5.0, True)
    assert (row.model_name, row.model_version, row.dropped) == ("digits-cnn", "1.0.0", 0)
    assert json.loads(row.payload) == window(42, errors={"invalid_input": 2, "timeout": 1}, drift=True)


def test_a_batch_becomes_a_row_per_window():
    parsed = parse(batch([window(7), window(8), window(9, outbox={"dropped": 3, "pending": 1})]))
    assert [w.seq for w in parsed.windows] == [7, 8, 9]
    assert [w.dropped for w in parsed.windows] == [0, 0, 3]
    assert parsed.state is None


def test_batch_windows_without_names_take_the_topics():
    bare = window(3)
    del bare["fleet"], bare["device"], bare["schema"]
    (row,) = parse(batch([bare])).windows
    assert (row.fleet, row.device) == ("lab", "pi-7")
    assert json.loads(row.payload)["device"] == "pi-7"


def test_an_empty_window_and_missing_optional_parts():
    doc = window(1, requests=0, errors={}, latency_ms={"p99": None}, model=None, outbox=None)
    del doc["drift"]
    (row,) = parse(doc).windows
    assert (row.requests, row.errors, row.p99, row.drift) == (0, 0, None, False)
    assert (row.model_name, row.model_version, row.dropped) == (None, None, None)


def test_nan_and_infinity_read_as_null_so_the_payload_stays_json():
    text = json.dumps(window(1)).replace('"p99": 5.0', '"p99": Infinity').replace('"mean": 1.2', '"mean": NaN')
    (row,) = parse_message(topic(), text.encode(), received=0.0).windows
    assert row.p99 is None
    assert json.loads(row.payload)["latency_ms"]["mean"] is None
    assert "Infinity" not in row.payload
    assert "NaN" not in row.payload


def test_a_state():
    parsed = parse(state("offline"), topic("state"))
    assert parsed.windows == ()
    assert parsed.state is not None
    assert (parsed.state.fleet, parsed.state.device, parsed.state.status) == ("lab", "pi-7", "offline")
    assert parsed.state.updated == 1795000100.0
    assert json.loads(parsed.state.payload)["since"] == 1795000000.0


def test_topic_levels():
    assert parse_topic("edgekit/lab/pi-7/telemetry") == ("lab", "pi-7", "telemetry")
    for bad in ("edgekit/lab/telemetry", "other/lab/pi-7/telemetry", "edgekit/lab/pi-7/config", "edgekit/l ab/x/state"):
        with pytest.raises(TelemetryError):
            parse_topic(bad)


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        ({**window(1), "schema": "edgekit.telemetry/2"}, "schema"),
        ({**window(1), "schema": "edgekit.state/1"}, "schema"),
        (window(0), "seq 0"),
        ({**window(1), "seq": "1"}, "seq"),
        ({**window(1), "seq": True}, "seq"),
        ({**window(1), "seq": 1.5}, "seq"),
        ({**window(1), "seq": 2**63}, "seq"),
        (window(1, window_start="yesterday"), "window_start"),
        (window(1, window_end=None), "window_end"),
        (window(1, window_end=1.0), "before window_start"),
        (window(1, requests=-1), "requests"),
        (window(1, requests=None), "requests"),
        (window(1, errors={"timeout": -1}), "errors"),
        (window(1, errors=3), "errors"),
        (window(1, drift="no"), "drift"),
        (window(1, latency_ms={"p99": "slow"}), "p99"),
        (window(1, outbox={"dropped": 1.5}), "outbox.dropped"),
        (window(1, model={"name": 7}), "model.name"),
        (window(1, model="digits"), "model"),
        (window(1, device="pi-8"), "device 'pi-8' in the payload does not match"),
        (window(1, fleet="prod"), "fleet 'prod' in the payload does not match"),
        ({k: v for k, v in window(1).items() if k != "device"}, "device None"),
        (window(1, model={"name": "a\u0000b"}), "NUL"),
        (batch([]), "non-empty list"),
        (batch([window(1), "w2"]), "windows[1]: not a JSON object"),
        (batch([window(1), window(0)]), "windows[1]: seq 0"),
        (batch([window(1, device="pi-8")]), "windows[0]: device"),
        ({**batch([window(1)]), "device": "pi-8"}, "device"),
    ],
)
def test_bad_telemetry_is_refused_as_a_whole(doc, words):
    with pytest.raises(TelemetryError) as caught:
        parse(doc)
    assert words in str(caught.value)
    assert str(caught.value).startswith("edgekit/lab/pi-7/telemetry")


def test_a_lone_surrogate_is_refused():
    text = json.dumps(window(1)).replace('"digits-cnn"', '"digits\\ud800"')
    with pytest.raises(TelemetryError, match="not valid Unicode"):
        parse_message(topic(), text.encode(), received=0.0)


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({**state("online"), "status": ""}, "status"),
        ({**state("online"), "status": None}, "status"),
        (state("online", device="pi-8"), "does not match"),
        (window(1), "schema"),
    ],
)
def test_bad_states_are_refused(doc, words):
    with pytest.raises(TelemetryError) as caught:
        parse(doc, topic("state"))
    assert words in str(caught.value)
