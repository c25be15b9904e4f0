"""The collector against a real Mosquitto: exactly once, shared groups, persistent sessions, broker restarts."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from edgekit.errors import ConfigError, TelemetryError
from edgekit.telemetry.collector import Collector, CollectorSettings, foreign_claim
from edgekit.telemetry.store import open_store
from edgekit_runtime.mqtt.backoff import backoff
from tests.brokers import Mosquitto
from tests.edgekit.telemetry.sample import batch, encode, event, publisher, state, topic, wait_until, window

FAST = {"reconnect_min": 0.05, "reconnect_max": 0.5}


def settings(broker, **changes):
    return CollectorSettings(broker=broker.url, **{**FAST, **changes})


def seqs(db: Path, device="pi-7") -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM telemetry WHERE device = ? ORDER BY seq", (device,))]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "telemetry.db"


def test_windows_land_exactly_once(mosquitto, db):
    with open_store(db) as store, Collector(settings(mosquitto), store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for seq in range(1, 21):
                device.window(seq)
            device.send(topic(), batch([window(seq) for seq in range(21, 31)]))
            device.window(1, device="pi-8")
        wait_until(lambda: collector.counts.stored == 31, what="31 windows stored")
        assert collector.counts.received == 22
        assert collector.counts.duplicates == 0
        assert collector.counts.rejected == 0
    assert seqs(db) == list(range(1, 31))
    assert seqs(db, "pi-8") == [1]


def test_the_same_seq_twice_is_stored_once(mosquitto, db):
    with open_store(db) as store, Collector(settings(mosquitto), store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for seq in (1, 2, 3, 2, 3, 4):
                device.window(seq, requests=seq * 10)
            device.send(topic(), batch([window(4), window(5)]))
        wait_until(lambda: collector.counts.received == 7, what="7 messages")
        wait_until(lambda: collector.counts.stored + collector.counts.duplicates == 8, what="8 windows handled")
        assert (collector.counts.stored, collector.counts.duplicates) == (5, 3)
    assert seqs(db) == [1, 2, 3, 4, 5]


def test_bad_messages_are_counted_and_skipped(mosquitto, db, caplog):
    with open_store(db) as store, Collector(settings(mosquitto), store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            device.send(topic(), b"\x00not json")
            device.send(topic(), window(0))
            device.send(topic(device="pi-9"), window(1))  # the payload names pi-7
            device.send(topic("state"), window(1))
            device.window(1)
        wait_until(lambda: collector.counts.stored == 1, what="the good window")
        wait_until(lambda: collector.counts.rejected == 4, what="4 rejected")
        assert collector.counts.spoofed == 1  # the payload naming another device than the topic
    assert seqs(db) == [1]
    assert "rejected a message: edgekit/lab/pi-9/telemetry: device 'pi-7' in the payload" in caplog.text


def test_a_device_cannot_speak_for_another_from_its_own_topic(mosquitto, db, caplog):
    """pi-8 (which the broker lets publish only under edgekit/lab/pi-8/) sends in pi-7's name: nothing is kept."""
    own = {"device": "pi-8"}
    spoofs = [
        (topic(**own), window(500)),  # a future seq: stored, it would make pi-7's real windows "duplicates"
        (topic(**own), window(501, fleet="other", device="pi-8")),
        (topic(**own), batch([window(502)], device="pi-8")),  # the batch says pi-8, its window pi-7
        (topic(**own), batch([window(503, device="pi-8")])),  # the batch says pi-7
        (topic("state", **own), state("offline")),
        (topic("events", **own), event("committed")),
    ]
    with open_store(db) as store, Collector(settings(mosquitto), store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for where, doc in spoofs:
                device.send(where, doc)
            wait_until(lambda: collector.counts.rejected == len(spoofs), what="every spoof rejected")
            for seq in (1, 2):
                device.window(seq)
        wait_until(lambda: collector.counts.stored == 2, what="pi-7's own windows")
        counts = collector.counts
        assert (counts.rejected, counts.spoofed, counts.duplicates, counts.states, counts.events) == (6, 6, 0, 0, 0)
        assert [(s.device, s.windows) for s in store.summary()] == [("pi-7", 2)]
    assert seqs(db) == [1, 2]
    assert seqs(db, "pi-8") == []
    assert "edgekit/lab/pi-8/state: device 'pi-7' in the payload does not match the topic's" in caplog.text
    assert "edgekit/lab/pi-8/telemetry: fleet 'other' in the payload does not match" in caplog.text


@pytest.mark.parametrize(
    ("where", "payload", "claim"),
    [
        (topic(device="pi-8"), window(1), "device 'pi-7'"),
        (topic(device="pi-8"), batch([window(1, device="pi-8")], device="pi-7"), "device 'pi-7'"),
        (topic(device="pi-8"), batch([{"seq": 1, "fleet": "x" * 64}], device="pi-8"), "fleet 'xxxxxxxxxx"),
        (topic(device="pi-7"), window(0), None),  # malformed, not a spoof
        (topic(device="pi-7"), b"\xff not json", None),
        (topic(device="pi-7"), b"[1, 2]", None),
        (topic(device="pi-7"), {"schema": "edgekit.telemetry/1", "seq": 1}, None),  # names no one: malformed
        ("edgekit/lab/+/telemetry", window(1), None),  # not a device's topic
    ],
)
def test_a_foreign_claim_is_told_from_a_malformed_message(where, payload, claim):
    said = foreign_claim(where, encode(payload))
    if claim is None:
        assert said is None
    else:
        assert said is not None
        assert claim in said
        assert said.endswith("a device may only speak for itself (counted as spoofed)")
        assert len(said) < 200


def test_states_are_kept_retained_ones_included(mosquitto, db):
    with publisher(mosquitto) as device:
        device.send(topic("state", device="pi-1"), state("online", device="pi-1"), retain=True)
    with open_store(db) as store, Collector(settings(mosquitto, fleet="lab"), store) as collector:
        wait_until(lambda: collector.counts.states == 1, what="the retained state")
        with publisher(mosquitto) as device:
            device.send(topic("state", device="pi-1"), state("offline", device="pi-1"))
            device.send(topic("state", fleet="other", device="pi-2"), state("online", fleet="other", device="pi-2"))
        wait_until(lambda: collector.counts.states == 2, what="the new state")
        assert [(s.device, s.status) for s in store.summary()] == [("pi-1", "offline")]  # fleet "other" is not ours


def test_two_collectors_in_a_share_group_split_the_work(mosquitto, tmp_path):
    stores = [open_store(tmp_path / f"c{i}.db") for i in (1, 2)]
    collectors = [
        Collector(settings(mosquitto, share="collectors", client_id=f"c{i}"), store)
        for i, store in enumerate(stores, 1)
    ]
    try:
        for collector in collectors:
            collector.start()
            assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for seq in range(1, 41):
                device.window(seq)
        wait_until(lambda: sum(c.counts.stored for c in collectors) == 40, what="40 windows between the two")
    finally:
        for collector in collectors:
            collector.stop()
        for store in stores:
            store.close()
    first, second = (set(seqs(tmp_path / f"c{i}.db")) for i in (1, 2))
    assert first
    assert second
    assert not first & second
    assert first | second == set(range(1, 41))
    assert sum(c.counts.duplicates for c in collectors) == 0


def test_a_collector_that_was_away_gets_what_it_missed(mosquitto, db):
    with open_store(db) as store:
        with Collector(settings(mosquitto, client_id="steady"), store) as collector:
            assert collector.wait_ready(10)
        assert collector.session_expiry == 86400
        with publisher(mosquitto) as device:
            for seq in range(1, 11):
                device.window(seq)
        with Collector(settings(mosquitto, client_id="steady"), store) as collector:
            wait_until(lambda: collector.counts.stored == 10, what="the 10 windows sent while it was away")
    assert seqs(db) == list(range(1, 11))


class FailingStore:
    """A store whose writes fail ``failures`` times (forever with ``None``), then go to ``store``."""

    def __init__(self, store, failures=None):
        self.store = store
        self.where = store.where
        self.failures = failures
        self.attempts = 0

    def add_windows(self, windows, states=(), events=()):
        self.attempts += 1
        if self.failures is None or self.attempts <= self.failures:
            raise TelemetryError("the database is on fire")
        return self.store.add_windows(windows, states, events)

    def summary(self):
        return self.store.summary()

    def close(self):
        self.store.close()


def test_nothing_is_acknowledged_before_it_is_committed(mosquitto, db):
    with open_store(db) as store:
        broken = FailingStore(store)
        with Collector(settings(mosquitto, client_id="careful"), broken) as collector:
            assert collector.wait_ready(10)
            with publisher(mosquitto) as device:
                for seq in range(1, 6):
                    device.window(seq)
            wait_until(lambda: broken.attempts >= 2, what="a retried write")
            assert collector.counts.received == 5
        assert seqs(db) == []
        with Collector(settings(mosquitto, client_id="careful"), store) as collector:
            wait_until(lambda: collector.counts.stored == 5, what="the broker sending the 5 windows again")
    assert seqs(db) == [1, 2, 3, 4, 5]


def test_a_failing_store_is_retried_until_it_works(mosquitto, db, caplog):
    with open_store(db) as store:
        flaky = FailingStore(store, failures=3)
        with Collector(settings(mosquitto), flaky) as collector:
            assert collector.wait_ready(10)
            with publisher(mosquitto) as device:
                device.window(1)
            wait_until(lambda: collector.counts.stored == 1, what="the window, after 3 failed writes")
    assert flaky.attempts == 4
    assert "cannot store 1 messages (the database is on fire): retrying" in caplog.text


def test_it_reconnects_after_the_broker_is_killed(mosquitto, db):
    with open_store(db) as store, Collector(settings(mosquitto, client_id="survivor"), store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for seq in range(1, 6):
                device.window(seq)
        wait_until(lambda: collector.counts.stored == 5, what="5 windows before the crash")
        mosquitto.kill()
        mosquitto.start()
        wait_until(lambda: collector.connections >= 2, what="a reconnect")
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for seq in range(6, 11):
                device.window(seq)
        wait_until(lambda: collector.counts.stored == 10, what="5 windows after the restart")
    assert seqs(db) == list(range(1, 11))


def test_a_broker_that_is_not_up_yet_is_waited_for(tmp_path, db, caplog):
    broker = Mosquitto(tmp_path / "late")
    with open_store(db) as store, Collector(settings(broker), store) as collector:
        wait_until(lambda: "unreachable" in caplog.text, what="a log line about the broker")
        broker.start()
        try:
            assert collector.wait_ready(10)
            with publisher(broker) as device:
                device.window(1)
            wait_until(lambda: collector.counts.stored == 1, what="the window")
        finally:
            broker.stop()


def test_postgres_store_exactly_once(mosquitto, postgres_url):
    with open_store(postgres_url) as store, Collector(settings(mosquitto), store) as collector:
        assert collector.wait_ready(10)
        with publisher(mosquitto) as device:
            for seq in (1, 2, 2, 3):
                device.window(seq)
        wait_until(lambda: collector.counts.received == 4, what="4 messages")
        wait_until(lambda: collector.counts.stored + collector.counts.duplicates == 4, what="4 windows handled")
        assert (collector.counts.stored, collector.counts.duplicates) == (3, 1)
        assert store.summary()[0].windows == 3


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"broker": "http://127.0.0.1:1883"}, "not a broker URL"),
        ({"broker": "mqtt://"}, "not a broker URL"),
        ({"broker": "127.0.0.1:1883"}, "not a broker URL"),
        ({"broker": "mqtt://127.0.0.1:99999"}, "not a TCP port"),
        ({"broker": "mqtt://127.0.0.1:1883/topic"}, "path or query"),
        ({"fleet": "a/b"}, "--fleet"),
        ({"fleet": "#"}, "--fleet"),
        ({"share": "g/1"}, "--share"),
        ({"share": "+"}, "--share"),
        ({"client_id": ""}, "--client-id"),
        ({"keepalive": 1}, "keepalive"),
        ({"max_batch": 0}, "max_batch"),
        ({"reconnect_min": 2.0, "reconnect_max": 1.0}, "reconnect"),
        ({"session_expiry": -1}, "--session-expiry"),
        ({"ca_file": Path("/nonexistent/ca.pem")}, "--ca"),
        ({"broker": "mqtt://127.0.0.1", "ca_file": Path(__file__)}, "mqtts://"),
        ({"broker": "mqtts://127.0.0.1", "cert_file": Path(__file__)}, "both --cert and --key"),
    ],
)
def test_settings_are_checked(changes, words):
    with pytest.raises(ConfigError, match=None) as caught:
        CollectorSettings(**{"broker": "mqtt://127.0.0.1:1883", **changes})
    assert words in str(caught.value)


def test_settings_defaults_and_urls():
    plain = CollectorSettings(broker="mqtt://broker.example")
    assert plain.address() == ("broker.example", 1883)
    assert CollectorSettings(broker="mqtts://broker.example").address() == ("broker.example", 8883)
    secret = CollectorSettings(broker="mqtt://me:hunter2@broker.example:1884")
    assert secret.credentials() == ("me", "hunter2")
    assert secret.safe_url == "mqtt://broker.example:1884"
    hidden = CollectorSettings(broker="mqtt://b", password="hunter2")  # noqa: S106 (made up, to see it hidden)
    assert "hunter2" not in repr(hidden)
    assert [t for t, _ in CollectorSettings(broker="mqtt://b", fleet="lab", share="g").topics()] == [
        "$share/g/edgekit/lab/+/telemetry",
        "$share/g/edgekit/lab/+/events",
        "edgekit/lab/+/state",
    ]


def test_the_default_client_id_comes_from_the_database_and_fleet_so_a_restart_resumes(tmp_path):
    import subprocess
    import sys

    def derived_elsewhere(db: str, fleet: str, cwd) -> str:  # another process, as a restarted collector is
        code = (
            "from edgekit.telemetry.collector import Collector, CollectorSettings\n"
            "from edgekit.telemetry.store import open_store\n"
            f"with open_store({db!r}) as store:\n"
            f"    print(Collector(CollectorSettings(broker='mqtt://b', fleet={fleet!r}), store).client_id)\n"
        )
        return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True).stdout

    (tmp_path / "other").mkdir()
    with open_store(tmp_path / "t.db") as store:
        first = Collector(CollectorSettings(broker="mqtt://b"), store)
        second = Collector(CollectorSettings(broker="mqtt://b"), store)
        given = Collector(CollectorSettings(broker="mqtt://b", client_id="stable"), store)
    assert first.client_id.startswith("edgekit-collector-")
    assert second.client_id == f"{first.client_id}-2"  # two in one process would take each other's session
    assert (first.session_expiry, given.session_expiry) == (86400, 86400)
    again = derived_elsewhere("t.db", "+", tmp_path)
    assert again.strip() == first.client_id  # the same database, named relatively from its folder
    assert derived_elsewhere(str(tmp_path / "t.db"), "lab", tmp_path).strip() != first.client_id
    assert derived_elsewhere("t.db", "+", tmp_path / "other").strip() != first.client_id  # another file


def test_backoff_is_full_jitter_under_a_cap():
    rng = random.Random(1)  # noqa: S311 (jitter)
    waits = [[backoff(attempt, 0.5, 30.0, rng) for _ in range(200)] for attempt in range(12)]
    for attempt, found in enumerate(waits):
        assert all(0 <= w <= min(30.0, 0.5 * 2**attempt) for w in found)
    assert max(waits[0]) < 0.5
    assert max(waits[-1]) > 15  # capped at 30, spread over all of it
    assert min(waits[-1]) < 5
