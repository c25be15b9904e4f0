"""The publisher's store-and-forward against the in-memory broker: outages, lost connections, refusals, side
messages and subscriptions, with no Mosquitto."""

from __future__ import annotations

import json
import time

import pytest

from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.mqtt.testing import FakeBroker
from edgekit_runtime.telemetry.mqtt import Topics
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.publisher import Publisher, PublisherSettings

TOPICS = Topics("lab", "pi-1")
FAST = PublisherSettings(backoff_initial=0.01, backoff_max=0.05, drain_seconds=0.5)


def window(i: int) -> bytes:
    return json.dumps({"schema": "edgekit.telemetry/1", "fleet": "lab", "device": "pi-1", "requests": i}).encode()


def wait(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def sent_seqs(broker: FakeBroker) -> list[int]:
    """The ``seq`` of every window the broker took, in order (a window sent twice is there twice)."""
    seqs = []
    for message in broker.messages(TOPICS.telemetry):
        doc = json.loads(message.payload)
        seqs += [w["seq"] for w in doc["windows"]] if "windows" in doc else [doc["seq"]]
    return seqs


@pytest.fixture
def broker():
    return FakeBroker()


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "outbox.db") as outbox:
        yield outbox


@pytest.fixture
def publisher(broker, outbox):
    publisher = Publisher(outbox, MqttSettings("mqtt://fake"), TOPICS, settings=FAST, connector=broker.connection)
    yield publisher
    publisher.stop()


def state(broker: FakeBroker) -> dict:
    return json.loads(broker.retained[TOPICS.state].payload)


def test_windows_stored_while_the_broker_is_down_go_in_order_once_it_is_up(broker, outbox, publisher):
    broker.up = False
    publisher.start()
    for i in range(5):
        outbox.append(window(i))
    wait(lambda: "cannot reach the broker at mqtt://fake:1883" in publisher.stats.last_error, "the failure")
    assert outbox.count == 5
    broker.up = True
    wait(lambda: outbox.count == 0, "the outbox to drain")
    assert sent_seqs(broker) == [1, 2, 3, 4, 5]
    assert state(broker)["status"] == "online"
    assert publisher.stats.connects == 1
    publisher.stop()
    assert (state(broker)["status"], state(broker)["reason"]) == ("offline", "stopped")
    (message,) = broker.messages(TOPICS.telemetry)
    assert message.client_id == "edgekit-lab-pi-1"
    assert message.properties.content_type == "application/json"
    assert message.properties.expiry == 7 * 24 * 3600
    assert dict(message.properties.user) == {"schema": "edgekit.telemetry-batch/1", "seq": "1-5", "windows": "5"}


def test_a_lost_connection_leaves_the_will_and_what_was_not_acknowledged_goes_again(broker, outbox, publisher):
    broker.hold_acks = True
    publisher.start()
    wait(lambda: publisher.stats.connected, "a connection")
    for i in range(3):
        outbox.append(window(i))
        wait(lambda i=i: len(sent_seqs(broker)) == i + 1, "the window on its way")
    broker.drop()
    assert (state(broker)["status"], state(broker)["reason"]) == ("offline", "lost")
    broker.release_acks()  # acknowledged on the connection that is gone: they count for nothing
    assert outbox.count == 3
    wait(lambda: outbox.count == 0, "the windows sent again, and acknowledged")
    assert sent_seqs(broker) == [1, 2, 3, 1, 2, 3]  # the collector keeps one of each
    assert publisher.stats.connects == 2
    assert state(broker)["status"] == "online"


def test_a_window_the_broker_refuses_stays_in_the_outbox(broker, outbox, publisher):
    broker.refuse(TOPICS.telemetry, "Quota exceeded")
    outbox.append(window(1))
    publisher.start()
    wait(lambda: "refused telemetry seq 1-1: Quota exceeded" in publisher.stats.last_error, "the refusal")
    assert outbox.count == 1
    assert broker.messages(TOPICS.telemetry) == []


def test_a_login_the_broker_refuses_is_reported_and_tried_again(broker, outbox, publisher):
    broker.refuse_login = "Not authorized"
    outbox.append(window(1))
    publisher.start()
    wait(
        lambda: "the broker at mqtt://fake:1883 refused the connection: Not authorized" in publisher.stats.last_error,
        "the refusal",
    )
    broker.refuse_login = None
    wait(lambda: outbox.count == 0, "the outbox to drain once the login works")
    assert publisher.stats.last_error == ""


def test_fleet_events_go_again_until_the_broker_acknowledges_them(broker, publisher):
    events = "edgekit/lab/pi-1/events"
    broker.hold_acks = True
    publisher.start()
    publisher.send(events, b'{"id": "c-1"}')
    wait(lambda: len(broker.messages(events)) == 1, "the event sent")
    broker.drop()
    broker.hold_acks = False
    wait(lambda: len(broker.messages(events)) == 2, "the event sent again on the next connection")
    time.sleep(0.1)
    assert len(broker.messages(events)) == 2  # acknowledged this time: not again


def test_subscriptions_are_made_on_every_connection_and_their_messages_heard(broker, publisher):
    heard: list[tuple[str, bytes]] = []
    publisher.on_message = lambda topic, payload: heard.append((topic, payload))
    publisher.subscribe("edgekit/lab/pi-1/cmd")
    publisher.start()
    wait(lambda: "edgekit/lab/pi-1/cmd" in broker.subscriptions("edgekit-lab-pi-1"), "the subscription")
    assert state(broker)["status"] == "online"  # said after subscribing: a command sent on seeing it arrives
    broker.publish("edgekit/lab/pi-1/cmd", b"one")
    wait(lambda: heard == [("edgekit/lab/pi-1/cmd", b"one")], "the command heard")
    broker.drop()
    wait(lambda: publisher.stats.connects == 2, "a second connection")
    wait(lambda: "edgekit/lab/pi-1/cmd" in broker.subscriptions("edgekit-lab-pi-1"), "the subscription again")
    publisher.unsubscribe("edgekit/lab/pi-1/cmd")
    wait(lambda: broker.subscriptions("edgekit-lab-pi-1") == [], "the unsubscription")


def test_a_changed_state_is_published_again(broker, publisher):
    publisher.start()
    wait(lambda: TOPICS.state in broker.retained, "the first state")
    publisher.update_state(model={"name": "digits", "version": "2"})
    wait(lambda: state(broker).get("model") == {"name": "digits", "version": "2"}, "the new state")


def test_windows_requeued_from_the_replay_go_again_in_order_on_the_same_connection(broker, outbox, publisher):
    publisher.start()
    for i in range(6):
        outbox.append(window(i))
    wait(lambda: outbox.count == 0 and outbox.kept == 6, "every window sent and kept")
    connects = publisher.stats.connects
    done = outbox.requeue([(2, 3), (5, 5)])
    assert done.requeued == 3
    wait(lambda: sent_seqs(broker)[6:] == [2, 3, 5], "the requeued windows sent again")
    wait(lambda: outbox.count == 0, "them acknowledged again")
    assert publisher.stats.connects == connects  # no reconnect needed: the session went back to them
