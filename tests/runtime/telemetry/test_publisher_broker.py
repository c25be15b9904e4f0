"""The publisher against a real Mosquitto: MQTT 5 and 3.1.1, batching a backlog, TLS with a password and a
client certificate, and a broker that refuses the login."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.telemetry.mqtt import Topics
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.publisher import Publisher, PublisherSettings

if TYPE_CHECKING:
    from tests.brokers import Mosquitto

TOPICS = Topics("lab", "pi-1")


def window(i: int) -> bytes:
    return json.dumps({"schema": "edgekit.telemetry/1", "fleet": "lab", "device": "pi-1", "requests": i}).encode()


class Listener:
    """A subscriber to ``edgekit/#`` keeping what arrives (payload and MQTT 5 properties)."""

    def __init__(self, broker: Mosquitto, protocol: int = paho.MQTTv5, **tls: str) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        if tls:
            self.client.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
            self.client.username_pw_set("collector", "s3cret")
        self.client.on_message = lambda _c, _u, message: self.messages.append(message)
        subscribed = []
        self.client.on_subscribe = lambda *_: subscribed.append(True)
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("edgekit/#", qos=1)
        self.client.loop_start()
        wait(lambda: subscribed, "the listener's SUBACK")

    def windows(self) -> list[int]:
        """The ``seq`` of every window received, in arrival order."""
        seqs = []
        for message in self.messages:
            doc = json.loads(message.payload)
            if message.topic.endswith("/telemetry"):
                seqs += [w["seq"] for w in doc["windows"]] if "windows" in doc else [doc["seq"]]
        return seqs

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_windows_arrive_in_order_and_leave_the_outbox(protocol, mosquitto, tmp_path):
    listener = Listener(mosquitto)
    with Outbox(tmp_path / "outbox.db") as outbox:
        publisher = Publisher(outbox, MqttSettings(mosquitto.url, protocol=protocol), TOPICS)
        publisher.start()
        try:
            for i in range(5):
                outbox.append(window(i))
                time.sleep(0.1)  # one at a time: each goes alone
            wait(lambda: outbox.count == 0, "the outbox to drain")
        finally:
            publisher.stop()
    listener.close()
    assert listener.windows() == [1, 2, 3, 4, 5]
    telemetry = [m for m in listener.messages if m.topic == TOPICS.telemetry]
    properties = telemetry[0].properties
    if protocol == "5":
        assert dict(properties.UserProperty) == {"schema": "edgekit.telemetry/1", "seq": "1-1", "windows": "1"}
        assert properties.MessageExpiryInterval == 7 * 24 * 3600
        assert properties.ContentType == "application/json"
    else:
        assert not hasattr(properties, "UserProperty")
    states = [json.loads(m.payload)["status"] for m in listener.messages if m.topic == TOPICS.state]
    assert states == ["online", "offline"]


def test_a_backlog_goes_in_batches(mosquitto, tmp_path):
    listener = Listener(mosquitto)
    with Outbox(tmp_path / "outbox.db") as outbox:
        for i in range(120):
            outbox.append(window(i))
        settings = PublisherSettings(pack_windows=50)
        publisher = Publisher(outbox, MqttSettings(mosquitto.url), TOPICS, settings=settings)
        publisher.start()
        try:
            wait(lambda: outbox.count == 0, "the outbox to drain")
        finally:
            publisher.stop()
    listener.close()
    assert listener.windows() == list(range(1, 121))
    assert publisher.stats.messages == 3  # 50 + 50 + 20
    batch = json.loads(next(m.payload for m in listener.messages if m.topic == TOPICS.telemetry))
    assert batch["schema"] == "edgekit.telemetry-batch/1"
    assert batch["windows"][0]["outbox"] == {"dropped": 0, "pending": 120}


def tls_settings(broker: Mosquitto, pki, tmp_path, password: str) -> MqttSettings:
    (tmp_path / "pw").write_text(password + "\n")
    return MqttSettings(
        broker.tls_url,
        username="pi-1",
        password_file=tmp_path / "pw",
        ca_file=pki / "ca.pem",
        cert_file=pki / "client.pem",
        key_file=pki / "client.key",
    )


def test_tls_with_a_password_and_a_client_certificate(tls_mosquitto, tmp_path):
    broker, pki = tls_mosquitto
    files = {"ca": str(pki / "ca.pem"), "cert": str(pki / "client.pem"), "key": str(pki / "client.key")}
    listener = Listener(broker, **files)
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.append(window(1))
        publisher = Publisher(outbox, tls_settings(broker, pki, tmp_path, "device-pw"), TOPICS)
        publisher.start()
        try:
            wait(lambda: outbox.count == 0, "the outbox to drain over TLS")
        finally:
            publisher.stop()
    listener.close()
    assert listener.windows() == [1]


def test_a_refused_login_keeps_the_windows(tls_mosquitto, tmp_path):
    broker, pki = tls_mosquitto
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.append(window(1))
        settings = PublisherSettings(backoff_initial=0.1, backoff_max=0.2, drain_seconds=0.1)
        publisher = Publisher(outbox, tls_settings(broker, pki, tmp_path, "wrong"), TOPICS, settings=settings)
        publisher.start()
        try:
            wait(lambda: "refused" in publisher.stats.last_error, "the refusal")
        finally:
            publisher.stop()
        assert outbox.count == 1
    assert publisher.stats.connects == 0
    assert "Bad user name or password" in publisher.stats.last_error or "Not authorized" in publisher.stats.last_error


def test_an_outbox_that_cannot_delete_what_was_sent_sends_it_again_later(mosquitto, tmp_path, caplog):
    listener = Listener(mosquitto)
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.append(window(1))
        outbox._db.execute("PRAGMA query_only = ON")  # every write fails, as on a full or failing disk
        settings = PublisherSettings(backoff_initial=0.1, backoff_max=0.2)
        publisher = Publisher(outbox, MqttSettings(mosquitto.url), TOPICS, settings=settings)
        with caplog.at_level(logging.WARNING, logger="edgekit_runtime.telemetry"):
            publisher.start()
            try:
                wait(lambda: publisher.stats.connects >= 2, "a second session after the failed delete")
                assert outbox.count == 1  # the PUBACK came, the delete could not be written: it stays
                outbox._db.execute("PRAGMA query_only = OFF")
                wait(lambda: outbox.count == 0, "the outbox to drain once it can be written")
            finally:
                publisher.stop()
    listener.close()
    assert set(listener.windows()) == {1}  # sent again until deleted: a duplicate the collector keeps once
    assert len(listener.windows()) >= 2
    failures = [r.getMessage() for r in caplog.records if "cannot mark sent messages" in r.getMessage()]
    assert 1 <= len(failures) < publisher.stats.connects  # a line per failed session at most (with backoff)
    assert not [r for r in caplog.records if r.exc_info]
