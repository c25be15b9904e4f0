"""The collector's network and writer threads against the in-memory broker: a PUBACK only after the commit, and
only on the connection the message came in on; a lost connection resumes the session and gets again what was not
acknowledged; spoofs and malformed messages are counted, acknowledged and not stored."""

from __future__ import annotations

import sqlite3

import pytest

from edgekit.telemetry.collector import Collector, CollectorSettings
from edgekit.telemetry.store import open_store
from edgekit_runtime.mqtt.testing import FakeBroker
from tests.edgekit.telemetry.sample import encode, state, topic, wait_until, window

FAST = {"reconnect_min": 0.01, "reconnect_max": 0.05}


@pytest.fixture
def broker():
    return FakeBroker()


def collector(broker: FakeBroker, store, **changes) -> Collector:
    settings = CollectorSettings("mqtt://fake", client_id="collector", **{**FAST, **changes})
    return Collector(settings, store, connector=broker.connection)


def seqs(db) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM telemetry ORDER BY seq")]


def test_windows_are_stored_once_and_acknowledged_after_the_commit(broker, tmp_path):
    db = tmp_path / "t.db"
    with open_store(db) as store, collector(broker, store) as running:
        assert running.wait_ready(5)
        assert broker.subscriptions("collector") == [
            "edgekit/+/+/telemetry",
            "edgekit/+/+/events",
            "edgekit/+/+/state",
        ]
        for seq in (1, 2, 2, 3):
            broker.publish(topic(), encode(window(seq)))
        broker.publish(topic("state"), encode(state("online")))
        wait_until(lambda: running.counts.stored + running.counts.duplicates == 4, what="4 windows handled")
        assert (running.counts.received, running.counts.stored, running.counts.duplicates) == (5, 3, 1)
        wait_until(lambda: not broker._sessions["collector"].unacked, what="every message acknowledged")
    assert seqs(db) == [1, 2, 3]


def test_what_was_not_acknowledged_comes_again_after_a_lost_connection(broker, tmp_path):
    db = tmp_path / "t.db"
    with open_store(db) as store, collector(broker, store, session_expiry=60) as running:
        assert running.wait_ready(5)
        broker.publish(topic(), encode(window(1)))
        wait_until(lambda: running.counts.stored == 1, what="the first window")
        broker.drop("collector")
        broker.publish(topic(), encode(window(2)))  # queued in the session while the collector is away
        wait_until(lambda: running.connections == 2, what="a reconnect")
        assert running.wait_ready(5)
        wait_until(lambda: running.counts.stored == 2, what="the window queued meanwhile")
    assert seqs(db) == [1, 2]
    assert broker.subscriptions("collector")  # the session stays on the broker after a stop


def test_a_spoof_and_a_malformed_message_are_counted_acknowledged_and_not_stored(broker, tmp_path):
    db = tmp_path / "t.db"
    with open_store(db) as store, collector(broker, store) as running:
        assert running.wait_ready(5)
        broker.publish(topic(device="pi-8"), encode(window(1, device="pi-7")))  # pi-8 speaking for pi-7
        broker.publish(topic(), b"{not json")
        wait_until(lambda: running.counts.rejected == 2, what="2 rejected")
        assert running.counts.spoofed == 1
        wait_until(lambda: not broker._sessions["collector"].unacked, what="both acknowledged")
    assert seqs(db) == []


def test_a_broker_that_is_not_up_yet_is_waited_for(broker, tmp_path, caplog):
    broker.up = False
    with open_store(tmp_path / "t.db") as store, collector(broker, store) as running:
        wait_until(lambda: "broker mqtt://fake:1883 unreachable" in caplog.text, what="a log line about the broker")
        broker.up = True
        assert running.wait_ready(5)


class BrokenStore:
    """A store whose every write fails."""

    def __init__(self) -> None:
        self.attempts = 0

    def add_windows(self, windows, states=(), events=()):  # noqa: ARG002
        self.attempts += 1
        raise OSError("the disk is gone")


def test_nothing_is_acknowledged_before_it_is_committed(broker, tmp_path):
    broken = BrokenStore()
    with collector(broker, broken) as running:
        assert running.wait_ready(5)
        broker.publish(topic(), encode(window(1)))
        wait_until(lambda: broken.attempts >= 2, what="a retried write")
        assert len(broker._sessions["collector"].unacked) == 1
    with open_store(tmp_path / "t.db") as store, collector(broker, store) as running:
        wait_until(lambda: running.counts.stored == 1, what="the broker sending the window again")
        wait_until(lambda: not broker._sessions["collector"].unacked, what="acknowledged at last")
