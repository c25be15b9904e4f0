"""The collector's gap repair against the in-memory broker: signed resend requests for the gaps that stay, none for
what fills by itself, the device's answer stored as lost, backoff, refusals, and no key."""

from __future__ import annotations

import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit.telemetry.collector import Collector, CollectorSettings
from edgekit.telemetry.store import open_store
from edgekit_runtime.fleet.command_journal import CommandJournal
from edgekit_runtime.fleet.signed_command import CommandGate
from edgekit_runtime.mqtt.testing import FakeBroker
from edgekit_runtime.signing import TrustedKey, key_id
from tests.edgekit.telemetry.sample import encode, event, topic, wait_until, window

FAST = {"reconnect_min": 0.01, "reconnect_max": 0.05, "repair_interval": 0.05, "repair_grace": 0.3}
CMD = "edgekit/lab/pi-7/cmd"


@pytest.fixture
def broker():
    return FakeBroker()


@pytest.fixture
def owner():
    return Ed25519PrivateKey.generate()


def collector(broker, store, key, **changes) -> Collector:
    settings = CollectorSettings("mqtt://fake", client_id="collector", **{**FAST, **changes})
    return Collector(settings, store, connector=broker.connection, sign_key=key)


def requests(broker, owner, tmp_path) -> list[dict]:
    """The resend commands the broker got for pi-7, opened as the device opens them (signature, target, nonce)."""
    public = owner.public_key()
    gate = CommandGate([TrustedKey(key_id(public), public, "t")], fleet="lab", journal=CommandJournal(tmp_path))
    return [gate.open(m.payload, "pi-7") for m in broker.messages(CMD)]


def test_a_gap_that_stays_is_asked_for_signed_and_the_answer_ends_it(broker, owner, tmp_path):
    with open_store(tmp_path / "t.db") as store, collector(broker, store, owner) as running:
        assert running.wait_ready(5)
        for seq in (1, 2, 5, 6, 9):
            broker.publish(topic(), encode(window(seq)))
        wait_until(lambda: len(broker.messages(CMD)) == 1, what="a resend request")
        (asked,) = requests(broker, owner, tmp_path)
        assert (asked["command"], asked["ranges"], asked["target"]) == ("resend", [[3, 4], [7, 8]], "pi-7")
        # the device sends 3 and 4 again, and says 7 and 8 are gone
        broker.publish(topic(), encode(window(3)))
        broker.publish(topic(), encode(window(4)))
        answer = event("done", command_id=asked["id"], command="resend", resent={"resent": 2, "gone": [[7, 8]]})
        broker.publish(topic("events"), encode(answer))
        wait_until(lambda: not store.gaps(0), what="no gap left")
        assert [s.lost for s in store.summary()] == [2]
        broker_count = len(broker.messages(CMD))
        wait_until(lambda: running.repair.requests >= 1, what="the count")
    assert len(broker.messages(CMD)) == broker_count == 1  # nothing asked again once answered
    assert running.repair.windows_asked == 4


def test_a_gap_that_fills_by_itself_within_the_grace_is_not_asked_for(broker, owner, tmp_path):
    with open_store(tmp_path / "t.db") as store, collector(broker, store, owner, repair_grace=1.0) as running:
        assert running.wait_ready(5)
        broker.publish(topic(), encode(window(1)))
        broker.publish(topic(), encode(window(3)))
        wait_until(lambda: running.counts.stored == 2, what="2 windows")
        broker.publish(topic(), encode(window(2)))  # out of order, soon enough
        wait_until(lambda: running.counts.stored == 3, what="3 windows")
        wait_until(lambda: running.repair.requests == 0 and not store.gaps(0), what="nothing to repair")
    assert broker.messages(CMD) == []


def test_an_unanswered_gap_is_asked_again_later_not_every_turn(broker, owner, tmp_path):
    with open_store(tmp_path / "t.db") as store, collector(broker, store, owner, repair_grace=0.1) as running:
        assert running.wait_ready(5)
        for seq in (1, 3):
            broker.publish(topic(), encode(window(seq)))
        wait_until(lambda: len(broker.messages(CMD)) == 2, timeout=10, what="a second request")
    # the first after the grace, the second after 0.2 s more, then 0.4 s: fewer than one per turn (0.05 s)
    assert running.repair.requests < 10


def test_a_device_that_refuses_is_left_alone_and_logged_once(broker, owner, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "edgekit.telemetry.collector")
    with open_store(tmp_path / "t.db") as store, collector(broker, store, owner, repair_grace=0.1) as running:
        assert running.wait_ready(5)
        for seq in (1, 3):
            broker.publish(topic(), encode(window(seq)))
        wait_until(lambda: len(broker.messages(CMD)) == 1, what="a request")
        (asked,) = requests(broker, owner, tmp_path)
        refused = event("refused", command_id=asked["id"], command="resend", detail="this device trusts no key")
        broker.publish(topic("events"), encode(refused))
        wait_until(lambda: "refused to send missing windows again" in caplog.text, what="the refusal logged")
        wait_until(lambda: running.repair.requests >= 1, what="the count")
        before = len(broker.messages(CMD))
        time.sleep(1.0)  # several turns, and longer than the backoff would wait
        assert len(broker.messages(CMD)) == before
    assert caplog.text.count("refused to send missing windows again") == 1
    assert "this device trusts no key" in caplog.text


def test_without_a_key_the_gaps_are_logged_once_with_what_to_do(broker, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "edgekit.telemetry.collector")
    with open_store(tmp_path / "t.db") as store, collector(broker, store, None, repair_grace=0.0) as running:
        assert running.wait_ready(5)
        for seq in (1, 4):
            broker.publish(topic(), encode(window(seq)))
        wait_until(lambda: "windows missing" in caplog.text, what="the warning")
        time.sleep(0.3)
    assert broker.messages(CMD) == []
    line = next(r.getMessage() for r in caplog.records if "windows missing" in r.getMessage())
    assert line == (
        "lab/pi-7: 2 windows missing (seq 2-3 first); cannot ask for them without the fleet's key: collect with "
        "--sign-key FLEET.key (or EDGEKIT_SIGN_KEY)"
    )
    assert caplog.text.count("windows missing") == 1


def test_repair_is_off_in_a_shared_group_unless_asked_and_off_when_told(broker, owner, tmp_path, caplog):
    caplog.set_level(logging.INFO, "edgekit.telemetry.collector")
    assert CollectorSettings("mqtt://b").repairing
    assert not CollectorSettings("mqtt://b", share="g").repairing
    assert CollectorSettings("mqtt://b", share="g", repair=True).repairing
    with (
        open_store(tmp_path / "t.db") as store,
        collector(broker, store, owner, repair=False, repair_grace=0) as running,
    ):
        assert running.wait_ready(5)
        for seq in (1, 3):
            broker.publish(topic(), encode(window(seq)))
        wait_until(lambda: running.counts.stored == 2, what="2 windows")
        time.sleep(0.3)
    assert broker.messages(CMD) == []
    assert "gap repair is off" in caplog.text
