"""The collector's MQTT side: the paho-mqtt client and its callbacks, in one small adapter.

:class:`MqttSession` speaks MQTT 5 with ``manual_ack=True``: it connects with ``clean_start=False`` and a
session expiry (so the broker keeps the subscriptions and queues messages while the collector is away),
subscribes on every connection (a broker without persistence forgets), hands each message on as a
:class:`Received` that remembers which connection it came in on, and sends a PUBACK only when asked, and
only on that same connection. Everything here runs on the collector's network thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgekit_runtime.telemetry.mqtt import Client, log_in

if TYPE_CHECKING:
    from collections.abc import Callable

    import paho.mqtt.client as paho
    from paho.mqtt.client import ConnectFlags, DisconnectFlags
    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit.telemetry.collector import CollectorSettings

logger = logging.getLogger("edgekit.telemetry.collector")

#: how long one loop waits in select(): the most an acknowledgement waits to be sent
_TICK_S = 0.01


class Received(NamedTuple):
    """A message as the network thread hands it to the writer."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    #: which connection it came in on (an acknowledgement is only good there)
    connection: int
    received: float


class MqttSession:
    """The paho-mqtt client and its callbacks, used from one thread only.

    paho is not thread-safe outside its own loop, and the collector runs the loop itself, for its own backoff.
    """

    def __init__(self, settings: CollectorSettings, client_id: str, deliver: Callable[[Received], None]) -> None:
        """A client for ``settings`` that hands each message to ``deliver``."""
        self.settings = settings
        self.deliver = deliver
        self.connection = 0  # the current connection's number, once the broker accepted it
        self.accepted = False
        self.closing = False
        self.subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self.client = Client(  # paho's, closing a TLS socket whose handshake failed
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        log_in(self.client, settings)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def connect(self, session_expiry: int) -> None:
        """Open a connection that resumes the session (``OSError`` when the broker cannot be reached)."""
        self.accepted = False
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry
        host, port = self.settings.address()
        self.client.connect(host, port, self.settings.keepalive, clean_start=False, properties=properties)

    def loop(self) -> bool:
        """Handle network events for a moment; ``False`` once the connection is gone."""
        return self.client.loop(_TICK_S) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack(self, message: Received) -> None:
        """PUBACK ``message`` if its connection is the current one (else the broker sends it again)."""
        if message.qos > 0 and message.connection == self.connection and self.client.is_connected():
            self.client.ack(message.mid, message.qos)

    def disconnect(self, timeout: float) -> None:
        """Send what is queued and a DISCONNECT (the session stays on the broker), then close."""
        self.closing = True
        if self.client.is_connected():
            self.client.disconnect()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.loop():
                pass
        self.client.loop(0)  # lets paho close the socket

    def _on_connect(
        self, _c: paho.Client, _u: object, flags: ConnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            logger.warning("broker %s refused the connection: %s", self.settings.safe_url, reason)
            return
        self.accepted = True
        self.connection += 1
        logger.info(
            "connected to %s (%s session)", self.settings.safe_url, "resumed" if flags.session_present else "new"
        )
        # subscribe every time: a broker that lost its sessions (no persistence) would otherwise send nothing
        _, self._subscribe_mid = self.client.subscribe(self.settings.topics())

    def _on_subscribe(
        self, _c: paho.Client, _u: object, mid: int, reasons: list[ReasonCode], _p: Properties | None
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [
            f"{topic}: {reason}"
            for (topic, _), reason in zip(self.settings.topics(), reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            logger.error("broker %s refused subscriptions: %s", self.settings.safe_url, "; ".join(refused))
            return
        logger.info("subscribed to %s", ", ".join(topic for topic, _ in self.settings.topics()))
        self.subscribed.set()

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        self.subscribed.clear()
        if self.closing:
            logger.info("disconnected from %s", self.settings.safe_url)
        elif self.accepted:
            logger.warning("lost the connection to %s: %s", self.settings.safe_url, reason)
        self.accepted = False

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(a topic that is not UTF-8)"
        self.deliver(Received(topic, bytes(message.payload), message.mid, message.qos, self.connection, time.time()))
