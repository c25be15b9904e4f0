"""The in-memory broker does what edgekit relies on a real one to do: wildcards, retained messages, QoS 1 acks,
sessions, wills, outages."""

from __future__ import annotations

import threading

import pytest

from edgekit_runtime.mqtt.connection import (
    Acked,
    Connected,
    ConnectRefused,
    Disconnected,
    Properties,
    Subscribed,
    Will,
)
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.mqtt.testing import FakeBroker, topic_matches


def settings(client_id: str | None = None, protocol: str = "5") -> MqttSettings:
    return MqttSettings("mqtt://fake", client_id=client_id, protocol=protocol)


def connected(broker: FakeBroker, client_id: str | None = None, **options):
    connection = broker.connection(settings(client_id), **options)
    connection.connect()
    assert isinstance(connection.loop(0)[0], Connected)
    return connection


def received(connection) -> list[tuple[str, bytes, bool]]:
    taken = []
    while not connection.messages.empty():
        message = connection.messages.get_nowait()
        taken.append((message.topic, message.payload, message.retain))
    return taken


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("+/+", "a/b", True),
        ("a/#", "a/b/c", True),
        ("a/#", "a", True),  # the parent level too
        ("#", "a/b", True),
        ("#", "$SYS/broker", False),  # wildcards at the first level leave $-topics alone
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("edgekit/lab/+/cmd", "edgekit/lab/@all/cmd", True),
        ("edgekit/+/+/state", "edgekit/lab/pi-1/telemetry", False),
    ],
)
def test_topic_filters(pattern, topic, matches):
    assert topic_matches(pattern, topic) is matches


def test_a_message_reaches_every_matching_subscription_once_and_is_acknowledged():
    broker = FakeBroker()
    sender, listener = connected(broker, "sender"), connected(broker, "listener")
    listener.subscribe(["edgekit/+/+/state", "edgekit/lab/#"])  # two filters match: one copy
    (subscribed,) = listener.loop(0)
    assert subscribed == Subscribed(subscribed.mid, (None, None))
    delivery = sender.publish("edgekit/lab/pi-1/state", b"{}", properties=Properties(content_type="application/json"))
    assert not delivery.done  # the PUBACK comes from the loop
    (acked,) = sender.loop(0)
    assert acked == Acked(delivery)
    assert delivery.done
    assert delivery.refusal is None
    assert received(listener) == [("edgekit/lab/pi-1/state", b"{}", False)]
    assert broker.messages("edgekit/#")[0].properties == Properties(content_type="application/json")


def test_retained_messages_go_to_new_subscriptions_and_an_empty_one_clears_them():
    broker = FakeBroker()
    device = connected(broker, "pi-1")
    device.publish("edgekit/lab/pi-1/state", b"online", retain=True)
    device.publish("edgekit/lab/pi-2/state", b"online", retain=True)
    device.publish("edgekit/lab/pi-2/state", b"", retain=True)  # cleared
    operator = connected(broker, "operator")
    operator.subscribe(["edgekit/lab/+/state"])
    assert received(operator) == [("edgekit/lab/pi-1/state", b"online", True)]


def test_a_refused_publish_is_settled_with_the_reason_and_goes_nowhere():
    broker = FakeBroker()
    broker.refuse("edgekit/+/+/cmd")
    sender, listener = connected(broker, "collector"), connected(broker, "pi-1")
    listener.subscribe(["#"])
    delivery = sender.publish("edgekit/lab/pi-1/cmd", b"x")
    sender.loop(0)
    assert delivery.refusal == "Not authorized"
    assert received(listener) == []


def test_held_acks_arrive_when_released():
    broker = FakeBroker()
    broker.hold_acks = True
    sender = connected(broker)
    delivery = sender.publish("a", b"x")
    assert sender.loop(0) == []
    broker.release_acks()
    assert sender.loop(0) == [Acked(delivery)]


def test_publishing_without_a_connection_fails_at_once():
    connection = FakeBroker().connection(settings())
    delivery = connection.publish("a", b"x")
    assert delivery.done
    assert not delivery.sent
    assert delivery.error == "Message publish failed: The client is not currently connected."


def test_a_kept_session_queues_messages_while_its_client_is_away():
    broker = FakeBroker()
    collector = broker.connection(settings("collector"), manual_ack=True)
    collector.connect(clean_start=False, session_expiry=60)
    collector.subscribe(["edgekit/#"])
    collector.loop(0)
    collector.disconnect()
    connected(broker, "pi-1").publish("edgekit/lab/pi-1/telemetry", b"1")
    collector.connect(clean_start=False, session_expiry=60)
    assert collector.loop(0)[0] == Connected(session_present=True)
    assert collector.number == 2
    assert received(collector) == [("edgekit/lab/pi-1/telemetry", b"1", False)]


def test_a_session_without_expiry_is_gone_after_the_connection():
    broker = FakeBroker()
    client = connected(broker, "c")
    client.subscribe(["a"])
    client.disconnect()
    assert broker.subscriptions("c") == []
    client.connect(clean_start=False)
    assert client.loop(0)[0] == Connected(session_present=False)


def test_unacknowledged_messages_come_again_on_the_next_connection_and_an_old_ack_is_ignored():
    broker = FakeBroker()
    collector = broker.connection(settings("collector"), manual_ack=True)
    collector.connect(clean_start=False, session_expiry=60)
    collector.subscribe(["t/#"])
    broker.publish("t/1", b"1")
    broker.publish("t/2", b"2")
    first, second = collector.messages.get_nowait(), collector.messages.get_nowait()
    collector.ack(first)
    broker.drop("collector")
    collector.connect(clean_start=False, session_expiry=60)
    collector.ack(second)  # from the connection that was lost: no good on this one
    (again,) = [collector.messages.get_nowait() for _ in range(collector.messages.qsize())]
    assert (again.topic, again.connection) == ("t/2", 2)
    collector.ack(again)
    broker.drop("collector")
    collector.connect(clean_start=False, session_expiry=60)
    assert collector.messages.empty()


def test_a_lost_client_leaves_its_will_and_a_clean_one_does_not():
    broker = FakeBroker()
    will = Will("edgekit/lab/pi-1/state", b"offline", properties=Properties(content_type="application/json"))
    device = broker.connection(settings("pi-1"), will=will)
    device.connect()
    broker.drop("pi-1")
    events = device.loop(0)
    assert isinstance(events[-1], Disconnected)
    assert not device.connected
    assert not device.alive
    assert broker.retained["edgekit/lab/pi-1/state"].payload == b"offline"
    other = broker.connection(settings("pi-2"), will=Will("edgekit/lab/pi-2/state", b"offline"))
    other.connect()
    other.disconnect()
    assert "edgekit/lab/pi-2/state" not in broker.retained


def test_a_broker_that_is_down_refuses_connections_and_one_that_refuses_logins_says_why():
    broker = FakeBroker()
    broker.up = False
    connection = broker.connection(settings())
    with pytest.raises(ConnectionRefusedError):
        connection.connect()
    broker.up = True
    broker.refuse_login = "Bad user name or password"
    connection.connect()
    assert connection.loop(0) == [ConnectRefused("Bad user name or password")]
    assert not connection.alive


def test_a_shared_subscription_gives_each_message_to_one_member():
    broker = FakeBroker()
    members = [connected(broker, f"c{i}") for i in range(2)]
    for member in members:
        member.subscribe(["$share/g/edgekit/+/+/telemetry"])
    for seq in range(4):
        broker.publish("edgekit/lab/pi-1/telemetry", str(seq).encode())
    taken = [received(member) for member in members]
    assert [len(t) for t in taken] == [2, 2]
    assert sorted(p for t in taken for _, p, _ in t) == [b"0", b"1", b"2", b"3"]


def test_mqtt_3_drops_what_only_mqtt_5_carries():
    broker = FakeBroker()
    old = broker.connection(settings("old", protocol="3.1.1"))
    old.connect()
    old.publish("a", b"x", properties=Properties("application/json", 60, (("k", "v"),)))
    (message,) = broker.messages("a")
    assert message.properties == Properties()


def test_loop_waits_for_something_to_happen_and_wakes_when_it_does():
    broker = FakeBroker()
    listener = connected(broker)
    listener.subscribe(["a"])
    listener.loop(0)
    timer = threading.Timer(0.05, broker.publish, args=("a", b"x"))
    timer.start()
    assert listener.loop(5.0) == []  # woken by the message, long before 5 s
    timer.join()
    assert received(listener) == [("a", b"x", False)]
