"""An in-memory MQTT broker and its connections, for unit tests: no network, no Mosquitto.

``broker = FakeBroker()``; ``broker.connection`` is a :class:`~edgekit_runtime.mqtt.connection.Connector`, so
whatever takes one (the publisher, the collector, the operator's link) can be given it instead of the real
adapter. The broker does what edgekit relies on a real one to do:

- topic filters with ``+`` and ``#`` (not matching ``$``-topics at the first level) and shared subscriptions
  (``$share/GROUP/FILTER``: one member of a group gets each message);
- retained messages (an empty one clears the topic), sent to a new subscription with the retain flag set;
- QoS 1: a PUBACK for every publish (:meth:`FakeBroker.refuse` makes it a refusal, as an ACL does;
  ``hold_acks`` holds them back), and with ``manual_ack`` messages are sent again on the next connection until
  acknowledged on the one they came in on;
- sessions kept across connections (``clean_start=False`` with a ``session_expiry``), queueing messages while
  their client is away; the Last Will when a client is lost (:meth:`FakeBroker.drop`), not when it disconnects;
- a broker that is down (``up = False``: connecting raises ``ConnectionRefusedError``) or refuses logins.

Everything the broker took is in :attr:`FakeBroker.log`.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgekit_runtime.mqtt.connection import (
    Acked,
    Connected,
    ConnectionStatus,
    ConnectRefused,
    Delivery,
    Disconnected,
    Message,
    Properties,
    Subscribed,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit_runtime.mqtt.connection import Event, Will
    from edgekit_runtime.mqtt.settings import MqttSettings

NOT_CONNECTED = "Message publish failed: The client is not currently connected."
NONE = Properties()


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether the topic filter ``pattern`` (``+``: one level, ``#``: the rest) matches ``topic``."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False  # MQTT: wildcards at the first level do not match $SYS and the like
    want, have = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True  # also the parent: "a/#" matches "a"
        if i >= len(have) or (level not in ("+", have[i])):
            return False
    return len(want) == len(have)


@dataclass(frozen=True)
class Published:
    """A message the broker took."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    #: its MQTT 5 properties (none from an MQTT 3.1.1 client)
    properties: Properties = NONE


@dataclass
class _Session:
    """What the broker keeps of a client: its subscriptions, and messages it has not acknowledged or received."""

    subscriptions: dict[str, int] = field(default_factory=dict)
    #: messages for the client, sent again (in order) when it connects, until it acknowledges them
    unacked: list[Published] = field(default_factory=list)
    expiry: int = 0


class FakeBroker:
    """An in-memory broker, thread-safe; see the module's documentation."""

    def __init__(self) -> None:
        """An empty broker, up, taking every login and every publish."""
        self._lock = threading.RLock()
        #: ``False``: connecting raises ``ConnectionRefusedError``, as with no broker listening
        self.up = True
        #: a CONNACK reason code to answer every CONNECT with (``"Not authorized"``), or ``None``
        self.refuse_login: str | None = None
        #: PUBACKs wait until :meth:`release_acks`
        self.hold_acks = False
        self.retained: dict[str, Published] = {}
        self.log: list[Published] = []
        self._refused: list[tuple[str, str]] = []
        self._held: list[tuple[FakeConnection, Delivery]] = []
        self._online: dict[str, FakeConnection] = {}
        self._sessions: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        #: whose turn it is in each shared subscription (group, filter)
        self._turns: dict[tuple[str, str], int] = {}

    def connection(
        self, settings: MqttSettings, *, will: Will | None = None, manual_ack: bool = False
    ) -> FakeConnection:
        """A connection to this broker (the :class:`~edgekit_runtime.mqtt.connection.Connector`)."""
        return FakeConnection(self, settings, will=will, manual_ack=manual_ack)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish as another client would (QoS 1)."""
        with self._lock:
            self._route(Published("(test)", topic, payload, 1, retain))

    def refuse(self, pattern: str, reason: str = "Not authorized") -> None:
        """Refuse publishes on topics that match ``pattern``, answering ``reason`` (as an ACL does)."""
        with self._lock:
            self._refused.append((pattern, reason))

    def release_acks(self) -> None:
        """Send the PUBACKs held back while ``hold_acks`` was set (and stop holding them).

        Those of a connection lost meanwhile are gone with it, as on a real network.
        """
        with self._lock:
            self.hold_acks = False
            held, self._held = self._held, []
            for connection, delivery in held:
                connection._event(Acked(delivery))  # noqa: SLF001  (the broker and its connections are one unit)

    def drop(self, client_id: str | None = None) -> None:
        """Lose the network connection of ``client_id`` (``None``: every client), as a power cut would."""
        with self._lock:
            for cid, connection in list(self._online.items()):
                if client_id is None or cid == client_id:
                    connection._lose("Unspecified error", will=True)  # noqa: SLF001

    def messages(self, pattern: str = "#") -> list[Published]:
        """What the broker took on topics that match ``pattern``, in order."""
        with self._lock:
            return [p for p in self.log if topic_matches(pattern, p.topic)]

    def subscriptions(self, client_id: str) -> list[str]:
        """The topic filters ``client_id``'s session holds."""
        with self._lock:
            session = self._sessions.get(client_id)
            return list(session.subscriptions) if session is not None else []

    # -- for FakeConnection, under the lock --

    def _client_id(self, settings: MqttSettings) -> str:
        return settings.client_id or f"fake-{next(self._ids)}"

    def _accept(self, connection: FakeConnection, clean_start: bool, expiry: int) -> bool:
        """Take ``connection`` online; whether its session was kept from before."""
        old = self._online.get(connection.client_id)
        if old is not None and old is not connection:
            old._lose("Session taken over", will=True)  # noqa: SLF001
        session = None if clean_start else self._sessions.get(connection.client_id)
        present = session is not None
        if session is None:
            session = self._sessions[connection.client_id] = _Session()
        session.expiry = expiry
        self._online[connection.client_id] = connection
        for message in session.unacked:
            connection._deliver(message)  # noqa: SLF001
        if not connection.manual_ack:
            session.unacked.clear()
        return present

    def _leave(self, connection: FakeConnection, will: Will | None) -> None:
        if self._online.get(connection.client_id) is connection:
            del self._online[connection.client_id]
            session = self._sessions.get(connection.client_id)
            if session is not None and session.expiry == 0:
                del self._sessions[connection.client_id]
        if will is not None:
            properties = (will.properties or NONE) if connection.settings.v5 else NONE
            self._route(Published(connection.client_id, will.topic, will.payload, 1, will.retain, properties))

    def _refusal(self, topic: str) -> str | None:
        return next((reason for pattern, reason in self._refused if topic_matches(pattern, topic)), None)

    def _route(self, message: Published) -> None:
        self.log.append(message)
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        groups: dict[tuple[str, str], list[str]] = {}
        for client_id, session in self._sessions.items():
            for pattern in session.subscriptions:
                if pattern.startswith("$share/"):
                    _, group, real = pattern.split("/", 2)
                    if topic_matches(real, message.topic):
                        groups.setdefault((group, real), []).append(client_id)
                elif topic_matches(pattern, message.topic):
                    self._send(client_id, session, message)
                    break  # one copy per client, however many of its filters match
        for key, members in groups.items():  # a shared group: its members take turns
            turn = self._turns.get(key, 0)
            self._turns[key] = turn + 1
            client_id = sorted(members)[turn % len(members)]
            self._send(client_id, self._sessions[client_id], message)

    def _send(self, client_id: str, session: _Session, message: Published) -> None:
        connection = self._online.get(client_id)
        if connection is None or connection.manual_ack:
            session.unacked.append(message)  # kept until acknowledged (or sent when the client is back)
        if connection is not None:
            connection._deliver(message, retain=False)  # noqa: SLF001


class FakeConnection(ConnectionStatus):
    """A :class:`~edgekit_runtime.mqtt.connection.Connection` to a :class:`FakeBroker`."""

    def __init__(self, broker: FakeBroker, settings: MqttSettings, *, will: Will | None, manual_ack: bool) -> None:
        """Not connected yet."""
        super().__init__()
        self.broker = broker
        self.settings = settings
        self.will = will
        self.manual_ack = manual_ack
        self.messages: queue.Queue[Message] = queue.Queue()
        self.client_id = broker._client_id(settings)  # noqa: SLF001
        self._events: list[Event] = []
        self._wake = threading.Condition(broker._lock)  # noqa: SLF001
        self._mids = itertools.count(1)
        #: what was delivered on this connection and not yet acknowledged: mid -> message
        self._delivered: dict[int, Published] = {}

    def connect(self, *, clean_start: bool = True, session_expiry: int | None = None) -> None:
        """Connect; the CONNACK comes from :meth:`loop`. ``ConnectionRefusedError`` when the broker is down."""
        with self._wake:
            if not self.broker.up:
                raise ConnectionRefusedError(111, "Connection refused")
            if self.broker.refuse_login is not None:
                self._alive = False
                self._event(ConnectRefused(self.broker.refuse_login))
                return
            self._alive = self._connected = True
            self._number += 1
            self._delivered.clear()
            present = self.broker._accept(self, clean_start, session_expiry or 0)  # noqa: SLF001
            self._events.insert(0, Connected(session_present=present))

    def loop(self, timeout: float) -> list[Event]:
        """What happened; waits up to ``timeout`` seconds for something to."""
        with self._wake:
            if not self._events and self.messages.empty() and timeout > 0:
                self._wake.wait(timeout)
            events, self._events = self._events, []
        for event in events:
            if isinstance(event, Acked):
                event.delivery.settle(event.delivery.refusal)
        return events

    def subscribe(self, topics: Sequence[str], qos: int = 1) -> int:
        """Subscribe; the broker sends what is retained on each filter."""
        mid = next(self._mids)
        with self._wake:
            session = self.broker._sessions.get(self.client_id)  # noqa: SLF001
            if not self._connected or session is None:
                return mid
            for topic in topics:
                session.subscriptions[topic] = qos
            self._event(Subscribed(mid, tuple(None for _ in topics)))
            for topic in topics:
                real = topic.split("/", 2)[2] if topic.startswith("$share/") else topic
                for retained in list(self.broker.retained.values()):
                    if topic_matches(real, retained.topic):
                        self._deliver(retained, retain=True)
        return mid

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe."""
        with self._wake:
            session = self.broker._sessions.get(self.client_id)  # noqa: SLF001
            if session is not None:
                session.subscriptions.pop(topic, None)

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, properties: Properties | None = None
    ) -> Delivery:
        """Publish; the PUBACK (or the refusal) comes from :meth:`loop`."""
        with self._wake:
            if not self._connected:
                return Delivery(0, NOT_CONNECTED)
            delivery = Delivery(next(self._mids))
            kept = (properties or NONE) if self.settings.v5 else NONE
            message = Published(self.client_id, topic, bytes(payload), qos, retain, kept)
            delivery.refusal = self.broker._refusal(topic)  # noqa: SLF001  (settled when loop() hands out its PUBACK)
            if delivery.refusal is None:
                self.broker._route(message)  # noqa: SLF001
            if self.broker.hold_acks:
                self.broker._held.append((self, delivery))  # noqa: SLF001
            else:
                self._event(Acked(delivery))
        return delivery

    def ack(self, message: Message) -> None:
        """Acknowledge ``message`` if it came in on the current connection."""
        with self._wake:
            if not (self.manual_ack and self._connected and message.connection == self._number):
                return
            published = self._delivered.pop(message.mid, None)
            session = self.broker._sessions.get(self.client_id)  # noqa: SLF001
            if published is not None and session is not None and published in session.unacked:
                session.unacked.remove(published)

    def disconnect(self, timeout: float = 0.0) -> list[Event]:  # noqa: ARG002  (it takes no time here)
        """Disconnect cleanly (no Last Will)."""
        with self._wake:
            if self._connected:
                self._lose("Normal disconnection", will=False)
        return self.loop(0.0)

    def close(self) -> None:
        """Disconnect if still connected."""
        self.disconnect()
        self._alive = False

    # -- for the broker, under its lock --

    def _event(self, event: Event) -> None:
        with self._wake:
            self._events.append(event)
            self._wake.notify_all()

    def _deliver(self, message: Published, *, retain: bool = False) -> None:
        mid = next(self._mids)
        if self.manual_ack:
            self._delivered[mid] = message
        self.messages.put(Message(message.topic, message.payload, message.qos, retain, mid, self._number, time.time()))
        self._wake.notify_all()

    def _lose(self, reason: str, *, will: bool) -> None:
        if not self._connected:
            return
        self._connected = self._alive = False
        self.broker._held = [(c, d) for c, d in self.broker._held if c is not self]  # noqa: SLF001
        self.broker._leave(self, self.will if will else None)  # noqa: SLF001
        self._event(Disconnected(reason))
