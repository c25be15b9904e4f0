"""One connection of the publisher: its drain loop, and how stored windows become messages.

:class:`Session` drains over one :class:`~edgekit_runtime.mqtt.connection.Connection`, on the publisher's thread
(:mod:`edgekit_runtime.telemetry.publisher`), which makes a new one for every connection: it connects, subscribes
and says ``online``, publishes windows while fewer than ``max_inflight`` await their PUBACK, acknowledges each
PUBACK's windows in the outbox, and sends the device's side messages
(:class:`~edgekit_runtime.telemetry.channel.Channel`), until the connection is lost or the publisher stops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson

from edgekit_runtime.contract.telemetry import BATCH_SCHEMA, WINDOW_SCHEMA
from edgekit_runtime.mqtt.connection import Acked, Connected, ConnectRefused, Disconnected, Properties

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit_runtime.mqtt.connection import Connection, Delivery, Event
    from edgekit_runtime.telemetry.channel import Channel
    from edgekit_runtime.telemetry.outbox import Entry, Outbox

logger = logging.getLogger("edgekit_runtime.telemetry")

#: seconds to wait for a CONNACK after the TCP connection is up
CONNACK_TIMEOUT = 10.0
#: one turn of the network loop waits at most this long for the socket
LOOP_SECONDS = 0.05


def window_bytes(entry: Entry, dropped: int, pending: int) -> bytes:
    """A stored window with its ``seq`` and the outbox's counts put in front (the stored JSON is an object)."""
    return b'{"seq":%d,"outbox":{"dropped":%d,"pending":%d},%s' % (entry.seq, dropped, pending, entry.payload[1:])


def pack(entries: Sequence[Entry], limit: int) -> list[Entry]:
    """The leading entries whose payloads fit in ``limit`` bytes together (always at least one)."""
    total, count = 0, 0
    for entry in entries:
        total += len(entry.payload) + 96  # seq, outbox counts, the comma, a share of the batch's head
        if count and total > limit:
            break
        count += 1
    return list(entries[:count])


class DrainSettings(Protocol):
    """What a session reads of the publisher's settings."""

    @property
    def max_inflight(self) -> int:
        """Messages awaiting their PUBACK at once."""

    @property
    def pack_windows(self) -> int:
        """Most windows in one batch message."""

    @property
    def pack_bytes(self) -> int:
        """Most payload bytes in one batch message."""

    @property
    def message_expiry(self) -> int | None:
        """MQTT 5 message expiry in seconds."""


@dataclass
class PublisherStats:
    """What the publisher did (for tests, benchmarks and logs)."""

    connects: int = 0
    messages: int = 0
    windows_acked: int = 0
    connected: bool = False
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note_failure(self, message: str) -> None:
        """Log ``message`` (once while it stays the same) and keep it as :attr:`last_error`."""
        if message != self.last_error:
            logger.warning("telemetry: %s (windows wait in the outbox)", message)
        self.last_error = message


class Stop:
    """The publisher's stop: set once, with the time until which what waits may still be sent."""

    def __init__(self) -> None:
        """Not set."""
        self._event = threading.Event()
        self.drain_until = 0.0

    def set(self, drain_seconds: float) -> None:
        """Stop, sending what waits for up to ``drain_seconds`` more."""
        self.drain_until = time.monotonic() + drain_seconds
        self._event.set()

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`set`; whether it was called."""
        return self._event.wait(timeout)


class Session:
    """One connection: the drain loop, on the publisher's thread."""

    def __init__(
        self, connection: Connection, channel: Channel, outbox: Outbox, settings: DrainSettings, stats: PublisherStats
    ) -> None:
        """A session over ``connection`` (not connected yet: :meth:`run` connects)."""
        self.connection = connection
        self.channel = channel
        self.topics = channel.topics
        self.outbox = outbox
        self.settings = settings
        self.stats = stats
        self.where = connection.settings.safe_url
        self.connected = False
        self.refused = False
        #: telemetry messages awaiting their PUBACK, and their windows' ``seq``
        self.inflight: dict[Delivery, list[int]] = {}
        #: side messages awaiting their PUBACK
        self.side_inflight: dict[Delivery, tuple[str, bytes]] = {}
        self.acked: list[int] = []
        self.after = 0

    def run(self, stop: Stop) -> bool:
        """Connect and drain until the connection is lost or ``stop`` is set; whether a CONNACK came."""
        self.connection.connect(clean_start=True)
        deadline = time.monotonic() + CONNACK_TIMEOUT
        ever = False
        while True:
            self._handle(self.connection.loop(LOOP_SECONDS))
            self._hear()
            if not self.connection.alive or self.refused:
                break
            self._ack()
            if not self.connected:
                if time.monotonic() > deadline:
                    self.stats.note_failure(f"no CONNACK from {self.where} in {CONNACK_TIMEOUT:.0f} s")
                    break
                continue
            ever = True
            self._side()
            if stop.is_set() and (time.monotonic() > stop.drain_until or self._drained()):
                self._goodbye()
                break
            self._fill()
        self._ack()
        return ever

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Acked):
                self._on_puback(event.delivery)
            elif isinstance(event, Connected):
                self._on_connect()
            elif isinstance(event, ConnectRefused):
                self.refused = True
                self.stats.note_failure(f"the broker at {self.where} refused the connection: {event.reason}")
            elif isinstance(event, Disconnected):
                if self.connected:
                    logger.info("telemetry: disconnected from %s (%s)", self.where, event.reason)
                self.connected = False
                self.stats.connected = False

    def _on_connect(self) -> None:
        self.connected = True
        self.stats.connects += 1
        self.stats.connected = True
        self.stats.last_error = ""
        logger.info("telemetry: connected to %s", self.where)
        # subscribe first: the broker handles one connection's packets in order, so whoever sees this device
        # ``online`` can send it a command and know it is subscribed
        topics = [topic for _, topic in self.channel.take_subscribe_changes(all_now=True)]
        if topics:
            self.connection.subscribe(topics)
        self.channel.take_state_change()
        self.connection.publish(self.topics.state, self.channel.state_payload("online"), retain=True)

    def _on_puback(self, delivery: Delivery) -> None:
        if self.side_inflight.pop(delivery, None) is not None:
            return  # a fleet event the broker has
        seqs = self.inflight.pop(delivery, None)
        if seqs is None:
            return  # the state message
        if delivery.refusal is not None:
            self.refused = True  # ends the session; the windows stay in the outbox and go again
            self.stats.note_failure(f"the broker refused telemetry seq {seqs[0]}-{seqs[-1]}: {delivery.refusal}")
            return
        self.acked.extend(seqs)

    def _hear(self) -> None:
        """Hand the messages that arrived to whoever listens (the fleet agent)."""
        while True:
            try:
                message = self.connection.messages.get_nowait()
            except queue.Empty:
                return
            self.channel.hear(message.topic, message.payload)

    def _side(self) -> None:
        """Publish waiting fleet events, and the state again if it changed."""
        if self.channel.take_state_change():
            self.connection.publish(self.topics.state, self.channel.state_payload("online"), retain=True)
        for subscribe, topic in self.channel.take_subscribe_changes():
            if subscribe:
                self.connection.subscribe([topic])
            else:
                self.connection.unsubscribe(topic)
        for topic, payload in self.channel.take_side():
            self.side_inflight[self.connection.publish(topic, payload)] = (topic, payload)

    def _drained(self) -> bool:
        return not self.inflight and not self.outbox.pending(1, after=self.after)

    def _fill(self) -> None:
        """Publish windows past the last one sent while fewer than ``max_inflight`` await their PUBACK."""
        rewind = self.outbox.take_rewind()  # windows a collector asked for again: back to the lowest, in order
        if rewind is not None and rewind <= self.after:
            self.after = rewind - 1
        while len(self.inflight) < self.settings.max_inflight:
            # held: the outbox's bounds do not drop what is read here until the session ends, so no window both
            # arrives and is counted as dropped
            entries = self.outbox.pending(self.settings.pack_windows, after=self.after, hold=True)
            if not entries:
                return
            entries = pack(entries, self.settings.pack_bytes)
            dropped, pending = self.outbox.dropped, self.outbox.count
            windows = [window_bytes(entry, dropped, pending) for entry in entries]
            if len(windows) == 1:
                payload, schema = windows[0], WINDOW_SCHEMA
            else:
                head = b'{"schema":"%s","fleet":%s,"device":%s,"windows":[' % (
                    BATCH_SCHEMA.encode(),
                    orjson.dumps(self.topics.fleet),
                    orjson.dumps(self.topics.device),
                )
                payload, schema = head + b",".join(windows) + b"]}", BATCH_SCHEMA
            seqs = [entry.seq for entry in entries]
            properties = Properties(
                content_type="application/json",
                expiry=self.settings.message_expiry,
                user=(("schema", schema), ("seq", f"{seqs[0]}-{seqs[-1]}"), ("windows", str(len(seqs)))),
            )
            delivery = self.connection.publish(self.topics.telemetry, payload, properties=properties)
            if not delivery.sent:
                return  # the connection is gone; the loop notices
            self.inflight[delivery] = seqs
            self.after = seqs[-1]
            self.stats.messages += 1

    def _ack(self) -> None:
        if self.acked:
            self.outbox.ack(self.acked)
            self.stats.windows_acked += len(self.acked)
            self.acked = []

    def _goodbye(self) -> None:
        """Retained ``offline`` (a clean disconnect sends no Last Will), then DISCONNECT."""
        delivery = self.connection.publish(
            self.topics.state, self.channel.state_payload("offline", reason="stopped"), retain=True
        )
        deadline = time.monotonic() + 2.0
        while not delivery.done and time.monotonic() < deadline:
            self._handle(self.connection.loop(LOOP_SECONDS))
            if not self.connection.alive:
                break
        self._ack()
        self._handle(self.connection.disconnect(LOOP_SECONDS))

    def close(self) -> None:
        """Close the connection if it is still open; fleet events without a PUBACK go again next time."""
        self.outbox.release()  # nothing of this session is in flight any more
        if self.side_inflight:
            self.channel.put_back(list(self.side_inflight.values()))
            self.side_inflight.clear()
        self.connection.close()
        self.stats.connected = False
