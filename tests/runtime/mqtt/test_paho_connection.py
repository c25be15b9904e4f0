"""The paho adapter against a real Mosquitto: CONNACK, SUBACK and PUBACK as events, messages in a queue, manual
acknowledgements, a publish from another thread, MQTT 3.1.1 without MQTT 5's properties."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from edgekit_runtime.mqtt.connection import (
    Acked,
    Connected,
    Disconnected,
    Event,
    Properties,
    Subscribed,
    Will,
    publish_and_wait,
)
from edgekit_runtime.mqtt.paho_connection import PahoConnection
from edgekit_runtime.mqtt.settings import MqttSettings


def run_until(connection: PahoConnection, wanted: type, timeout: float = 10.0) -> list[Event]:
    """Loop until an event of type ``wanted`` came; every event seen."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while not any(isinstance(e, wanted) for e in seen):
        assert time.monotonic() < deadline, f"no {wanted.__name__} in {timeout} s: {seen}"
        seen += connection.loop(0.02)
    return seen


def connect(url: str, client_id: str, *, manual_ack: bool = False) -> PahoConnection:
    connection = PahoConnection(MqttSettings(url, client_id=client_id), manual_ack=manual_ack)
    connection.connect()
    run_until(connection, Connected)
    return connection


def test_publish_subscribe_and_acknowledge(mosquitto):
    listener = connect(mosquitto.url, "listener", manual_ack=True)
    sender = connect(mosquitto.url, "sender")
    try:
        mid = listener.subscribe(["adapter/+/x"])
        (subscribed,) = [e for e in run_until(listener, Subscribed) if isinstance(e, Subscribed)]
        assert subscribed == Subscribed(mid, (None,))
        delivery = sender.publish("adapter/1/x", b"hello", properties=Properties("text/plain", 60, (("k", "v"),)))
        assert Acked(delivery) in run_until(sender, Acked)
        assert (delivery.done, delivery.refusal) == (True, None)
        deadline = time.monotonic() + 10
        while listener.messages.empty():
            assert time.monotonic() < deadline
            listener.loop(0.02)
        message = listener.messages.get_nowait()
        assert (message.topic, message.payload, message.qos, message.connection) == ("adapter/1/x", b"hello", 1, 1)
        listener.ack(message)
    finally:
        for connection in (listener, sender):
            assert any(isinstance(e, Disconnected) for e in connection.disconnect(2.0))
            assert not connection.alive
            connection.close()


def test_a_publish_from_another_thread_is_sent_by_the_loops_thread(mosquitto):
    sender = connect(mosquitto.url, "threaded")
    stop = threading.Event()
    failures: queue.Queue[BaseException] = queue.Queue()

    def loop() -> None:
        try:
            while not stop.is_set():
                sender.loop(0.01)
        except BaseException as exc:  # noqa: BLE001  (reported to the test)
            failures.put(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        time.sleep(0.05)  # the loop runs: publishes from here are handed over
        outcome = publish_and_wait(sender, [(f"adapter/t/{i}", b"x") for i in range(20)], 10.0)
        assert outcome.ok, outcome
    finally:
        stop.set()
        thread.join()
        sender.close()
    assert failures.empty()


def test_the_will_is_published_when_the_connection_is_lost(mosquitto):
    watcher = connect(mosquitto.url, "watcher")
    device = PahoConnection(MqttSettings(mosquitto.url, client_id="willing"), will=Will("adapter/will", b"gone"))
    device.connect()
    run_until(device, Connected)
    watcher.subscribe(["adapter/will"])
    run_until(watcher, Subscribed)
    device._client.socket().close()  # as a power cut: no DISCONNECT
    deadline = time.monotonic() + 10
    while watcher.messages.empty():
        assert time.monotonic() < deadline, "no will"
        watcher.loop(0.05)
    assert watcher.messages.get_nowait().payload == b"gone"
    watcher.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_unreachable_broker_refuses_the_connection(protocol):
    connection = PahoConnection(MqttSettings("mqtt://127.0.0.1:1", protocol=protocol))
    with pytest.raises(ConnectionRefusedError):
        connection.connect()
    assert not connection.alive
