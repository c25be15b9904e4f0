"""The seam between edgekit and an MQTT broker: :class:`Connection`, and the values that cross it.

A connection is driven by the thread that owns it: :meth:`Connection.loop` runs the network for a moment and
returns what happened (:data:`Event`: a CONNACK, a SUBACK, a PUBACK, a lost connection); messages that arrive
go to :attr:`Connection.messages`, a queue any thread may read. :meth:`Connection.publish` may be called from
any thread and returns a :class:`Delivery`, settled when the broker's PUBACK arrives (or refuses the message,
with an MQTT 5 reason code); :func:`publish_and_wait` publishes several and waits for them all.

The real connection is :class:`~edgekit_runtime.mqtt.paho_connection.PahoConnection`; an in-memory one for unit
tests is in :mod:`edgekit_runtime.mqtt.testing`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    import queue
    from collections.abc import Sequence

    from edgekit_runtime.mqtt.settings import MqttSettings


class Message(NamedTuple):
    """A message the broker sent this client."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    #: the broker's packet id (what :meth:`Connection.ack` acknowledges)
    mid: int
    #: which connection it came in on (:attr:`Connection.number`): an acknowledgement is only good there
    connection: int
    #: when it arrived (Unix seconds)
    received: float


@dataclass(frozen=True)
class Properties:
    """What MQTT 5 says of a message besides its payload; MQTT 3.1.1 brokers get none of it."""

    #: the payload's MIME type (the payload is then marked UTF-8 too)
    content_type: str | None = None
    #: seconds the broker keeps the message for a subscriber that is away
    expiry: int | None = None
    #: user properties: (name, value) pairs
    user: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Will:
    """The Last Will: what the broker publishes (QoS 1) for a client that goes away without a DISCONNECT."""

    topic: str
    payload: bytes
    retain: bool = True
    properties: Properties | None = None


class Delivery:
    """One published message, until the broker's PUBACK (QoS 1) settles it."""

    def __init__(self, mid: int, error: str | None = None) -> None:
        """``error``: why it could not be sent at all (it is settled then)."""
        self.mid = mid
        self.error = error
        #: the broker's reason code when it refused the message (MQTT 5: "Not authorized", ...)
        self.refusal: str | None = None
        self._done = threading.Event()
        if error is not None:
            self._done.set()

    @property
    def sent(self) -> bool:
        """Whether it went on its way (``False``: see :attr:`error`)."""
        return self.error is None

    @property
    def done(self) -> bool:
        """Whether the broker answered (or it could not be sent)."""
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait for the broker's answer (another thread runs the loop); whether it came in time."""
        return self._done.wait(timeout)

    def settle(self, refusal: str | None) -> None:
        """The broker answered: took it (``None``) or refused it, saying why; for connections to call."""
        self.refusal = refusal
        self._done.set()


@dataclass(frozen=True)
class Connected:
    """The broker accepted the connection (its CONNACK)."""

    #: whether it kept a session from an earlier connection (MQTT 5, ``clean_start=False``)
    session_present: bool


@dataclass(frozen=True)
class ConnectRefused:
    """The broker refused the connection (its CONNACK's reason code)."""

    reason: str


@dataclass(frozen=True)
class Subscribed:
    """The broker answered a subscription (its SUBACK)."""

    #: what :meth:`Connection.subscribe` returned
    mid: int
    #: per topic filter: ``None`` when granted, else the reason it was refused
    refusals: tuple[str | None, ...]


@dataclass(frozen=True)
class Acked:
    """The broker answered a publish (its PUBACK): the delivery is settled."""

    delivery: Delivery


@dataclass(frozen=True)
class Disconnected:
    """The connection ended, lost or closed."""

    reason: str


Event = Connected | ConnectRefused | Subscribed | Acked | Disconnected


class ConnectionStatus:
    """What every connection says of itself; the real one and the fake both start from here."""

    def __init__(self) -> None:
        """Never connected yet."""
        self._number = 0
        self._connected = False
        self._alive = False

    @property
    def number(self) -> int:
        """How many connections the broker accepted so far (the current one's number)."""
        return self._number

    @property
    def connected(self) -> bool:
        """Whether the broker accepted this connection and it is still up."""
        return self._connected

    @property
    def alive(self) -> bool:
        """Whether the network connection is still open (``False`` once it is lost or closed)."""
        return self._alive


class Connection(Protocol):
    """A client's connection to a broker, driven by the thread that calls :meth:`loop`."""

    settings: MqttSettings
    #: messages from the broker, in order, for any thread to take
    messages: queue.Queue[Message]

    @property
    def number(self) -> int:
        """How many connections the broker accepted so far (the current one's number)."""

    @property
    def connected(self) -> bool:
        """Whether the broker accepted this connection and it is still up."""

    @property
    def alive(self) -> bool:
        """Whether the network connection is still open (``False`` once it is lost or closed)."""

    def connect(self, *, clean_start: bool = True, session_expiry: int | None = None) -> None:
        """Open the network connection and send CONNECT (``OSError``: the broker cannot be reached).

        The answer comes from :meth:`loop`. ``clean_start=False`` resumes the session the broker kept, and
        ``session_expiry`` says how long it keeps this one (MQTT 5).
        """

    def loop(self, timeout: float) -> list[Event]:
        """Run the network for at most ``timeout`` seconds; what happened."""

    def subscribe(self, topics: Sequence[str], qos: int = 1) -> int:
        """Subscribe to ``topics``; the id of the :class:`Subscribed` that answers."""

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, properties: Properties | None = None
    ) -> Delivery:
        """Publish ``payload`` on ``topic``; any thread. ``properties`` are dropped on MQTT 3.1.1."""

    def ack(self, message: Message) -> None:
        """Acknowledge ``message`` (a client made with ``manual_ack``) if its connection is the current one."""

    def disconnect(self, timeout: float = 0.0) -> list[Event]:
        """Send DISCONNECT (no Last Will) and run the loop up to ``timeout`` seconds while it goes; what happened."""

    def close(self) -> None:
        """Disconnect if still connected, and close the network connection."""


class Connector(Protocol):
    """What makes connections: :class:`~edgekit_runtime.mqtt.paho_connection.PahoConnection`, or a fake."""

    def __call__(self, settings: MqttSettings, *, will: Will | None = None, manual_ack: bool = False) -> Connection:
        """A connection for ``settings``, not yet connected; ``manual_ack``: :meth:`Connection.ack` sends PUBACKs."""


@dataclass(frozen=True)
class Outcome:
    """What the broker said to messages published together (:func:`publish_and_wait`)."""

    #: why a message could not be sent at all (the first such), else ``None``
    error: str | None = None
    #: messages the broker did not answer in time
    unanswered: int = 0
    #: the reasons the broker gave for those it refused, sorted, once each
    refusals: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the broker took every one."""
        return self.error is None and not self.unanswered and not self.refusals


def publish_and_wait(
    connection: Connection, messages: Sequence[tuple[str, bytes]], timeout: float, *, retain: bool = False
) -> Outcome:
    """Publish ``messages`` at QoS 1 and wait up to ``timeout`` seconds for their PUBACKs (another thread loops)."""
    deadline = time.monotonic() + timeout
    deliveries = [connection.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages]
    unanswered = sum(not d.wait(max(deadline - time.monotonic(), 0.001)) for d in deliveries)
    error = next((d.error for d in deliveries if d.error is not None), None)  # one that was not sent is settled
    if error is not None:
        return Outcome(error=error)
    refusals = tuple(sorted({d.refusal for d in deliveries if d.refusal is not None}))
    return Outcome(unanswered=unanswered, refusals=refusals)
