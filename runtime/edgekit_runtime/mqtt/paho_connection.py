"""The one adapter to paho-mqtt 2: :class:`PahoConnection`, with paho's callbacks kept inside it.

paho is not thread-safe outside its own loop, so one thread drives a connection (:meth:`PahoConnection.loop`)
and makes every paho call; a publish from another thread is handed to that thread and sent on its next turn.
The callbacks (callback API version 2) only turn what paho reports into :data:`~edgekit_runtime.mqtt.connection.Event`
values and :class:`~edgekit_runtime.mqtt.connection.Message` s. paho's own reconnecting is off: whoever owns a
connection reconnects with :class:`~edgekit_runtime.mqtt.backoff.Backoff`.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.mqtt.connection import (
    Acked,
    Connected,
    ConnectionStatus,
    ConnectRefused,
    Delivery,
    Disconnected,
    Message,
    Subscribed,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence

    from paho.mqtt.client import ConnectFlags, DisconnectFlags
    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit_runtime.mqtt.connection import Event, Properties, Will
    from edgekit_runtime.mqtt.settings import MqttSettings

PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


class _Client(paho.Client):
    """paho-mqtt's client, closing the TLS socket when the handshake fails.

    paho 2.2 leaves the wrapped socket open when ``do_handshake()`` raises (a broker certificate from
    another CA, say), so every failed attempt leaks a file descriptor until the garbage collector finds it.
    The context is always ``tls_set``'s, which checks the host name itself.
    """

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        context = self._ssl_context
        if context is None:  # pragma: no cover  (paho calls this only after tls_set)
            raise ConfigError("TLS was asked for without a TLS context")
        ssl_sock = context.wrap_socket(tcp_sock, server_hostname=self._host, do_handshake_on_connect=False)
        try:
            ssl_sock.settimeout(self._connect_timeout)
            ssl_sock.do_handshake()
        except BaseException:
            ssl_sock.close()
            raise
        return ssl_sock


def log_in(client: paho.Client, settings: MqttSettings) -> None:
    """Set ``settings``' credentials and TLS files (the broker's certificate checked) on a paho ``client``."""
    user, password = settings.credentials()
    if user is not None:
        client.username_pw_set(user, password)
    if settings.tls:
        client.tls_set(
            ca_certs=None if settings.ca_file is None else str(settings.ca_file),
            certfile=None if settings.cert_file is None else str(settings.cert_file),
            keyfile=None if settings.key_file is None else str(settings.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
        )


def _properties(packet: int, given: Properties | None, settings: MqttSettings) -> PahoProperties | None:
    """The paho properties for ``given`` (none on MQTT 3.1.1)."""
    if given is None or not settings.v5:
        return None
    props = PahoProperties(packet)  # type: ignore[no-untyped-call]
    if given.content_type is not None:
        props.PayloadFormatIndicator = 1
        props.ContentType = given.content_type
    if given.expiry is not None:
        props.MessageExpiryInterval = given.expiry
    if given.user:
        props.UserProperty = list(given.user)
    return props


class _Publish(NamedTuple):
    """A publish, as paho takes it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: PahoProperties | None


def _failure(rc: MQTTErrorCode) -> str:
    """What paho's ``wait_for_publish`` would have said of a publish that was not queued."""
    if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
        return "Message is not queued due to ERR_QUEUE_SIZE"
    return f"Message publish failed: {paho.error_string(rc)}"


class PahoConnection(ConnectionStatus):
    """A :class:`~edgekit_runtime.mqtt.connection.Connection` through paho-mqtt (callback API version 2)."""

    def __init__(self, settings: MqttSettings, *, will: Will | None = None, manual_ack: bool = False) -> None:
        """A client for ``settings`` with its Last Will (retained, QoS 1); :meth:`connect` connects."""
        super().__init__()
        self.settings = settings
        self.messages: queue.Queue[Message] = queue.Queue()
        self._events: list[Event] = []
        self._manual_ack = manual_ack
        #: the thread that runs the loop; a publish from any other is handed to it
        self._owner: int | None = None
        self._handed: queue.SimpleQueue[tuple[Delivery, _Publish]] = queue.SimpleQueue()
        #: deliveries awaiting their PUBACK, by packet id (the loop's thread alone reads and writes it)
        self._pending: dict[int, Delivery] = {}
        self._client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or "",
            protocol=PROTOCOLS[settings.protocol],
            clean_session=None if settings.v5 else True,
            manual_ack=manual_ack,
            reconnect_on_failure=False,  # the owner reconnects, with its own backoff
        )
        log_in(self._client, settings)
        if will is not None:
            props = _properties(PacketTypes.WILLMESSAGE, will.properties, settings)
            self._client.will_set(will.topic, will.payload, qos=1, retain=will.retain, properties=props)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def connect(self, *, clean_start: bool = True, session_expiry: int | None = None) -> None:
        """Open the network connection and send CONNECT; the CONNACK comes from :meth:`loop`."""
        host, port = self.settings.address()
        options: dict[str, Any] = {}
        if self.settings.v5:
            options["clean_start"] = clean_start
            if session_expiry is not None:
                properties = PahoProperties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = session_expiry
                options["properties"] = properties
        self._client.connect(host, port, keepalive=self.settings.keepalive, **options)
        self._alive = True

    def loop(self, timeout: float) -> list[Event]:
        """Send what other threads handed over, then run the network for at most ``timeout`` seconds."""
        self._owner = threading.get_ident()
        while True:
            try:
                delivery, request = self._handed.get_nowait()
            except queue.Empty:
                break
            self._send(delivery, request)
        if self._client.loop(timeout) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._alive = False
        events, self._events = self._events, []
        return events

    def subscribe(self, topics: Sequence[str], qos: int = 1) -> int:
        """Subscribe to ``topics``; the SUBACK's id."""
        _, mid = self._client.subscribe([(topic, qos) for topic in topics])
        return int(mid or 0)

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""
        self._client.unsubscribe(topic)

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, properties: Properties | None = None
    ) -> Delivery:
        """Publish (from another thread than the loop's: on the loop's next turn); settled by the PUBACK."""
        request = _Publish(topic, payload, qos, retain, _properties(PacketTypes.PUBLISH, properties, self.settings))
        delivery = Delivery(0)
        if self._owner is not None and self._owner != threading.get_ident():
            self._handed.put((delivery, request))
        else:
            self._send(delivery, request)
        return delivery

    def _send(self, delivery: Delivery, request: _Publish) -> None:
        try:
            info = self._client.publish(
                request.topic, request.payload, qos=request.qos, retain=request.retain, properties=request.properties
            )
        except ValueError as exc:  # a topic or payload paho refuses
            delivery.error = str(exc)
            delivery.settle(None)
            return
        delivery.mid = info.mid
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            delivery.error = _failure(info.rc)
            delivery.settle(None)
            return
        self._pending[info.mid] = delivery

    def ack(self, message: Message) -> None:
        """PUBACK ``message`` if it came in on the current connection (else the broker sends it again)."""
        if self._manual_ack and message.qos > 0 and message.connection == self._number and self._connected:
            self._client.ack(message.mid, message.qos)

    def disconnect(self, timeout: float = 0.0) -> list[Event]:
        """Send DISCONNECT and run the loop while it goes, for at most ``timeout`` seconds."""
        if self._client.is_connected():
            self._client.disconnect()
        deadline = time.monotonic() + timeout
        events = self.loop(min(timeout, 0.01))
        while self._alive and time.monotonic() < deadline:
            events += self.loop(0.01)
        return events

    def close(self) -> None:
        """Disconnect if still connected, and close the socket."""
        if self._connected:
            self._client.disconnect()
        sock = self._client.socket()
        if sock is not None:
            sock.close()
        self._connected = self._alive = False

    # -- paho's callbacks (VERSION2 signatures), run inside loop() on the owner's thread --

    def _on_connect(
        self, _c: paho.Client, _u: object, flags: ConnectFlags, reason: ReasonCode, _p: PahoProperties | None
    ) -> None:
        if reason.is_failure:
            self._events.append(ConnectRefused(str(reason)))
            return
        self._number += 1
        self._connected = True
        self._events.append(Connected(session_present=bool(flags.session_present)))

    def _on_subscribe(
        self, _c: paho.Client, _u: object, mid: int, reasons: list[ReasonCode], _p: PahoProperties | None
    ) -> None:
        self._events.append(Subscribed(mid, tuple(str(r) if r.is_failure else None for r in reasons)))

    def _on_publish(self, _c: paho.Client, _u: object, mid: int, reason: ReasonCode, _p: PahoProperties | None) -> None:
        refusal = str(reason) if reason.is_failure else None  # Mosquitto: "Not authorized" to what its ACL denies
        delivery = self._pending.pop(mid, None)
        if delivery is None:
            return  # sent again by paho after a reconnect: its delivery was settled as failed
        delivery.settle(refusal)
        self._events.append(Acked(delivery))

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: DisconnectFlags, reason: ReasonCode, _p: PahoProperties | None
    ) -> None:
        self._connected = False
        self._events.append(Disconnected(str(reason)))

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(a topic that is not UTF-8)"
        self.messages.put(
            Message(topic, bytes(message.payload), message.qos, message.retain, message.mid, self._number, time.time())
        )
