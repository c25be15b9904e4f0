"""Deliveries and :func:`publish_and_wait`: what the broker said to messages published together."""

from __future__ import annotations

import threading

import pytest

from edgekit_runtime.mqtt.connection import Delivery, Outcome, publish_and_wait
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.mqtt.testing import FakeBroker


def test_a_delivery_is_settled_by_its_puback_or_at_once_when_it_could_not_be_sent():
    delivery = Delivery(7)
    assert (delivery.sent, delivery.done) == (True, False)
    assert not delivery.wait(0.01)
    delivery.settle("Not authorized")
    assert delivery.wait(0)
    assert delivery.refusal == "Not authorized"
    failed = Delivery(0, "Message publish failed: The client is not currently connected.")
    assert (failed.sent, failed.done) == (False, True)


@pytest.fixture
def looping():
    """A connection to an in-memory broker, its loop run by a thread of its own (as the operator's link does)."""
    broker = FakeBroker()
    connection = broker.connection(MqttSettings("mqtt://fake", client_id="operator"))
    connection.connect()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            connection.loop(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield broker, connection
    stop.set()
    thread.join()


def test_every_message_taken(looping):
    broker, connection = looping
    outcome = publish_and_wait(connection, [("a/1", b"1"), ("a/2", b"2")], 5.0, retain=True)
    assert outcome == Outcome()
    assert outcome.ok
    assert sorted(broker.retained) == ["a/1", "a/2"]


def test_the_refusals_are_reported_once_each(looping):
    broker, connection = looping
    broker.refuse("cmd/#", "Not authorized")
    broker.refuse("other/#", "Quota exceeded")
    outcome = publish_and_wait(connection, [("cmd/1", b""), ("cmd/2", b""), ("other/1", b""), ("fine", b"")], 5.0)
    assert outcome == Outcome(refusals=("Not authorized", "Quota exceeded"))
    assert not outcome.ok


def test_messages_without_an_answer_in_time_are_counted(looping):
    broker, connection = looping
    broker.hold_acks = True
    assert publish_and_wait(connection, [("a", b"1"), ("b", b"2")], 0.05) == Outcome(unanswered=2)


def test_a_message_that_cannot_be_sent_says_why():
    connection = FakeBroker().connection(MqttSettings("mqtt://fake"))  # never connected
    outcome = publish_and_wait(connection, [("a", b"1")], 1.0)
    assert outcome.error == "Message publish failed: The client is not currently connected."
