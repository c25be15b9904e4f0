"""A broker configured by ``edgekit fleet provision`` alone, and the clients that log in to it (issue 17).

Shared by tests/integration/test_broker_acl.py (the ACL, account by account) and test_field_attacks.py (every
attack of issue 17 against a real device on such a broker).
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgekit.telemetry.collector import CollectorSettings
from edgekit_runtime.mqtt.paho_connection import log_in
from tests.edgekit.telemetry.sample import encode
from tests.integration.rig import wait_for

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit.fleet.provision import Provisioned
    from edgekit_runtime.mqtt.settings import MqttSettings
    from tests.brokers import Mosquitto

_IDS = itertools.count()


def secret(provisioned: Provisioned, name: str) -> str:
    return provisioned.password_file(name).read_text().strip()


class Account:
    """A plain paho-mqtt 2 client (MQTT 5) that remembers what the broker answered."""

    def __init__(
        self, broker: Mosquitto, settings: MqttSettings | None, *, will: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"acl-test-{next(_IDS)}", protocol=MQTTProtocolVersion.MQTTv5
        )
        if settings is not None:
            log_in(self.client, settings)  # the runtime's: user name and password file
        if will is not None:
            self.client.will_set(will[0], encode(will[1]), qos=1, retain=True)
        self.broker = broker
        self.connack: ReasonCode | None = None
        self.acks: dict[int, ReasonCode] = {}
        self.granted: dict[int, list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self.acks.__setitem__(mid, reason)
        self.client.on_subscribe = lambda _c, _u, mid, reasons, _p: self.granted.__setitem__(mid, reasons)
        self.client.on_message = self._on_message
        self.gone = threading.Event()
        self.client.on_disconnect = lambda *_: self.gone.set()

    def _on_connect(self, _c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        self.connack = reason

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, 10, "a CONNACK")
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str, doc: dict[str, Any] | bytes, *, retain: bool = False) -> ReasonCode:
        """The PUBACK's reason code."""
        info = self.client.publish(topic, encode(doc), qos=1, retain=retain)
        wait_for(lambda: info.mid in self.acks, 10, f"the PUBACK for {topic}")
        return self.acks[info.mid]

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        """The SUBACK's reason codes (Mosquitto 2.0 grants any filter, and checks each message it would send)."""
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        wait_for(lambda: mid in self.granted, 10, f"the SUBACK for {topics}")
        return self.granted[mid]

    def topics(self) -> set[str]:
        with self._lock:
            return {topic for topic, _ in self.messages}

    def drop(self) -> None:
        """Close the socket without a DISCONNECT, as a device that loses power: the broker sends the will."""
        self.client.loop_stop()
        socket = self.client.socket()
        if socket is not None:
            socket.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def collector_settings(broker: Mosquitto, provisioned: Provisioned, **changes: Any) -> CollectorSettings:
    return CollectorSettings(
        broker=broker.url,
        username="collector",
        password=secret(provisioned, "collector"),
        fleet=provisioned.accounts.fleet,
        reconnect_min=0.05,
        reconnect_max=0.5,
        **changes,
    )
