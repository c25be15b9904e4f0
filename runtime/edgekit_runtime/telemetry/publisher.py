"""The publisher: drains the outbox to the broker in order, QoS 1, deleting a window only after its PUBACK.

One thread owns the paho-mqtt client and does everything with it (connect, publish, the network loop), so
no paho call crosses threads. Per connection (a :class:`_Session`):

- the Last Will is a retained ``offline`` state; on CONNACK the retained ``online`` state is published;
- windows are read from the outbox past the last one sent and published, at most ``max_inflight`` messages
  awaiting their PUBACK at a time; when more than one window waits (a backlog after an outage), up to
  ``pack_windows`` of them (and ``pack_bytes``) go in one batch message;
- each PUBACK deletes that message's windows from the outbox, in one transaction per network loop turn.

A lost connection ends the session; the next one starts from the oldest window still in the outbox (some
may arrive twice: the collector keeps one per ``(device, seq)``). Reconnects wait an exponential backoff
with full jitter: a delay drawn uniformly from 0 to ``min(backoff_max, backoff_initial * 2**attempt)``, so a
fleet that lost the same broker does not come back in lockstep. Every session is a fresh client with a
clean start: paho's own in-memory resend would only duplicate what the outbox resends.

With MQTT 5 each message has a message expiry (a collector that stays away longer than that does not get it
from the broker's queue), a content type, and user properties: ``schema``, ``seq`` (``FIRST-LAST``) and
``windows``. MQTT 3.1.1 brokers get none of these; the payload carries the same.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.telemetry.mqtt import make_client

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit_runtime.telemetry.mqtt import MqttSettings, Topics
    from edgekit_runtime.telemetry.outbox import Entry, Outbox

logger = logging.getLogger("edgekit_runtime.telemetry")

BATCH_SCHEMA = "edgekit.telemetry-batch/1"
STATE_SCHEMA = "edgekit.state/1"
#: seconds to wait for a CONNACK after the TCP connection is up
CONNACK_TIMEOUT = 10.0
#: one turn of the network loop waits at most this long for the socket
LOOP_SECONDS = 0.05


@dataclass(frozen=True)
class PublisherSettings:
    """How the outbox is drained."""

    #: messages awaiting their PUBACK at once
    max_inflight: int = 8
    #: most windows in one batch message
    pack_windows: int = 50
    #: most payload bytes in one batch message (a single window may be larger and is sent alone)
    pack_bytes: int = 256 << 10
    #: first reconnect delay's upper bound, in seconds; it doubles per failed attempt
    backoff_initial: float = 0.5
    #: largest reconnect delay's upper bound, in seconds
    backoff_max: float = 30.0
    #: MQTT 5 message expiry in seconds (``None``: none)
    message_expiry: int | None = 7 * 24 * 3600
    #: on a clean stop, seconds spent sending what waits before saying goodbye
    drain_seconds: float = 3.0

    def __post_init__(self) -> None:
        """Refuse settings that cannot work."""
        if self.max_inflight < 1 or self.pack_windows < 1 or self.pack_bytes < 1:
            raise ConfigError("max_inflight, pack_windows and pack_bytes must each be 1 or more")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ConfigError(
                f"reconnect backoff {self.backoff_initial}..{self.backoff_max} s is not a range: "
                "use 0 < backoff_initial <= backoff_max"
            )
        if self.message_expiry is not None and self.message_expiry < 1:
            raise ConfigError(f"message_expiry {self.message_expiry} expires at once: use seconds >= 1, or none")


def backoff_delay(attempt: int, settings: PublisherSettings, rng: random.Random) -> float:
    """Full jitter: uniform over [0, min(max, initial * 2**attempt)]."""
    return rng.uniform(0.0, min(settings.backoff_max, settings.backoff_initial * 2.0 ** min(attempt, 32)))


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


@dataclass
class PublisherStats:
    """What the publisher did (for tests, benchmarks and logs)."""

    connects: int = 0
    messages: int = 0
    windows_acked: int = 0
    connected: bool = False
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Publisher:
    """Drains ``outbox`` to the broker on a thread of its own; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        outbox: Outbox,
        mqtt: MqttSettings,
        topics: Topics,
        *,
        state: Mapping[str, Any] | None = None,
        settings: PublisherSettings | None = None,
        rng: random.Random | None = None,
        client_factory: Callable[..., paho.Client] = make_client,
    ) -> None:
        """``state``: what the retained ``online`` message says besides status (model, runtime, ...)."""
        self.outbox = outbox
        self.mqtt = mqtt
        self.topics = topics
        self.settings = settings or PublisherSettings()
        self.stats = PublisherStats()
        self._state = {"schema": STATE_SCHEMA, "fleet": topics.fleet, "device": topics.device, **(state or {})}
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self._client_factory = client_factory
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread: threading.Thread | None = None
        #: topics subscribed on every connection (QoS 1), and who is told of their messages
        self.subscriptions: list[str] = []
        self._subscribe_changes: list[tuple[bool, str]] = []
        self.on_message: Callable[[str, bytes], None] | None = None
        #: messages besides telemetry (fleet events): kept until a PUBACK, sent again on the next connection
        self._side: list[tuple[str, bytes]] = []
        self._side_lock = threading.Lock()
        self._state_changed = threading.Event()

    def state_payload(self, status: str, **extra: object) -> bytes:
        """The retained state message."""
        return orjson.dumps({**self._state, "status": status, "since": time.time(), **extra})

    def send(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` on ``topic`` (QoS 1) when connected; kept in memory until the broker has it."""
        with self._side_lock:
            self._side.append((topic, payload))

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` now (when connected) and on every later connection; any thread."""
        with self._side_lock:
            if topic not in self.subscriptions:
                self.subscriptions.append(topic)
                self._subscribe_changes.append((True, topic))

    def unsubscribe(self, topic: str) -> None:
        """Undo :meth:`subscribe`; any thread."""
        with self._side_lock:
            if topic in self.subscriptions:
                self.subscriptions.remove(topic)
                self._subscribe_changes.append((False, topic))

    def _take_subscribe_changes(self, *, all_now: bool = False) -> list[tuple[bool, str]]:
        """The (un)subscriptions to make; ``all_now``: on a new connection, every subscription."""
        with self._side_lock:
            changes = [(True, topic) for topic in self.subscriptions] if all_now else self._subscribe_changes
            self._subscribe_changes = []
        return changes

    def update_state(self, **fields: object) -> None:
        """Change what the retained ``online`` state says (a new model), and publish it again."""
        self._state.update(fields)
        self._state_changed.set()

    def _take_side(self) -> list[tuple[str, bytes]]:
        with self._side_lock:
            taken, self._side = self._side, []
        return taken

    def _put_back(self, unsent: list[tuple[str, bytes]]) -> None:
        with self._side_lock:
            self._side[:0] = unsent

    def start(self) -> None:
        """Connect and drain on a thread of its own (it keeps trying until :meth:`stop`)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgekit-telemetry-mqtt", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Send what waits for up to ``drain_seconds``, publish ``offline``, disconnect; the rest stays stored."""
        self._drain_until = time.monotonic() + self.settings.drain_seconds
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            session = _Session(self)
            try:
                connected = session.run()
            except OSError as exc:  # refused, unreachable, TLS failure: the broker is not there (yet)
                connected = False
                self._note_failure(f"cannot reach the broker at {self.mqtt.safe_url}: {exc}")
            except Exception as exc:  # a bug, or the outbox failing: log it, and try again after the backoff
                connected = False
                logger.exception("telemetry: the publisher's session failed")
                self.stats.last_error = f"session failed: {exc}"
            finally:
                session.close()
            if connected:
                attempt = 0
            if self._stop.is_set():
                break
            delay = backoff_delay(attempt, self.settings, self._rng)
            attempt += 1
            logger.debug("reconnecting to %s in %.2f s", self.mqtt.safe_url, delay)
            self._stop.wait(delay)

    def _note_failure(self, message: str) -> None:
        if message != self.stats.last_error:
            logger.warning("telemetry: %s (windows wait in the outbox)", message)
        self.stats.last_error = message


class _Session:
    """One connection: paho's callbacks and the drain loop."""

    def __init__(self, publisher: Publisher) -> None:
        self.p = publisher
        self.settings = publisher.settings
        self.v5 = publisher.mqtt.v5
        will_properties = None
        if self.v5:
            will_properties = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
            will_properties.ContentType = "application/json"
        will = (publisher.topics.state, publisher.state_payload("offline", reason="lost"), will_properties)
        client_id = f"edgekit-{publisher.topics.fleet}-{publisher.topics.device}"
        self.client = publisher._client_factory(publisher.mqtt, client_id, will=will)  # noqa: SLF001
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.connected = False
        self.refused = False
        self.inflight: dict[int, list[int]] = {}
        self.acked: list[int] = []
        self.after = 0
        self.side_inflight: dict[int, tuple[str, bytes]] = {}
        self.client.on_message = self._on_message

    # paho's callbacks (VERSION2 signatures), run inside client.loop() on this thread
    def _on_connect(
        self, client: paho.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if reason.is_failure:
            self.refused = True
            self.p._note_failure(f"the broker at {self.p.mqtt.safe_url} refused the connection: {reason}")  # noqa: SLF001
            return
        self.connected = True
        self.p.stats.connects += 1
        self.p.stats.connected = True
        self.p.stats.last_error = ""
        logger.info("telemetry: connected to %s", self.p.mqtt.safe_url)
        self.p._state_changed.clear()  # noqa: SLF001
        client.publish(self.p.topics.state, self.p.state_payload("online"), qos=1, retain=True)
        for _, topic in self.p._take_subscribe_changes(all_now=True):  # noqa: SLF001
            client.subscribe(topic, qos=1)

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        if self.p.on_message is not None:
            try:
                self.p.on_message(message.topic, bytes(message.payload))
            except Exception:  # the receiver's bug must not end the session
                logger.exception("handling a message on %s failed", message.topic)

    def _on_publish(
        self, _client: paho.Client, _userdata: object, mid: int, reason: ReasonCode, _props: object
    ) -> None:
        if self.side_inflight.pop(mid, None) is not None:
            return  # a fleet event the broker has
        seqs = self.inflight.pop(mid, None)
        if seqs is None:
            return  # the state message
        if reason.is_failure:
            self.refused = True  # ends the session; the windows stay in the outbox and go again
            self.p._note_failure(f"the broker refused telemetry seq {seqs[0]}-{seqs[-1]}: {reason}")  # noqa: SLF001
            return
        self.acked.extend(seqs)

    def _on_disconnect(
        self, _client: paho.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if self.connected:
            logger.info("telemetry: disconnected from %s (%s)", self.p.mqtt.safe_url, reason)
        self.connected = False
        self.p.stats.connected = False

    def run(self) -> bool:
        """Connect and drain until the connection is lost or the publisher stops; whether a CONNACK came."""
        host, port = self.p.mqtt.address()
        options: dict[str, Any] = {"clean_start": True} if self.v5 else {}
        self.client.connect(host, port, keepalive=self.p.mqtt.keepalive, **options)
        deadline = time.monotonic() + CONNACK_TIMEOUT
        ever = False
        while True:
            if self.client.loop(LOOP_SECONDS) != paho.MQTT_ERR_SUCCESS or self.refused:
                break
            self._ack()
            if not self.connected:
                if time.monotonic() > deadline:
                    self.p._note_failure(f"no CONNACK from {self.p.mqtt.safe_url} in {CONNACK_TIMEOUT:.0f} s")  # noqa: SLF001
                    break
                continue
            ever = True
            self._side()
            if self.p.stopping and (time.monotonic() > self.p._drain_until or self._drained()):  # noqa: SLF001
                self._goodbye()
                break
            self._fill()
        self._ack()
        return ever

    def _side(self) -> None:
        """Publish waiting fleet events, and the state again if it changed."""
        if self.p._state_changed.is_set():  # noqa: SLF001
            self.p._state_changed.clear()  # noqa: SLF001
            self.client.publish(self.p.topics.state, self.p.state_payload("online"), qos=1, retain=True)
        for subscribe, topic in self.p._take_subscribe_changes():  # noqa: SLF001
            if subscribe:
                self.client.subscribe(topic, qos=1)
            else:
                self.client.unsubscribe(topic)
        for topic, payload in self.p._take_side():  # noqa: SLF001
            info = self.client.publish(topic, payload, qos=1)
            self.side_inflight[info.mid] = (topic, payload)

    def _drained(self) -> bool:
        return not self.inflight and not self.p.outbox.pending(1, after=self.after)

    def _fill(self) -> None:
        """Publish windows past the last one sent while fewer than ``max_inflight`` await their PUBACK."""
        while len(self.inflight) < self.settings.max_inflight:
            entries = self.p.outbox.pending(self.settings.pack_windows, after=self.after)
            if not entries:
                return
            entries = pack(entries, self.settings.pack_bytes)
            dropped, pending = self.p.outbox.dropped, self.p.outbox.count
            windows = [window_bytes(entry, dropped, pending) for entry in entries]
            if len(windows) == 1:
                payload, schema = windows[0], "edgekit.telemetry/1"
            else:
                head = b'{"schema":"%s","fleet":%s,"device":%s,"windows":[' % (
                    BATCH_SCHEMA.encode(),
                    orjson.dumps(self.p.topics.fleet),
                    orjson.dumps(self.p.topics.device),
                )
                payload, schema = head + b",".join(windows) + b"]}", BATCH_SCHEMA
            seqs = [entry.seq for entry in entries]
            info = self.client.publish(
                self.p.topics.telemetry, payload, qos=1, properties=self._properties(schema, seqs)
            )
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return  # the connection is gone; the loop notices
            self.inflight[info.mid] = seqs
            self.after = seqs[-1]
            self.p.stats.messages += 1

    def _properties(self, schema: str, seqs: list[int]) -> Properties | None:
        if not self.v5:
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        if self.settings.message_expiry is not None:
            props.MessageExpiryInterval = self.settings.message_expiry
        props.UserProperty = [("schema", schema), ("seq", f"{seqs[0]}-{seqs[-1]}"), ("windows", str(len(seqs)))]
        return props

    def _ack(self) -> None:
        if self.acked:
            self.p.outbox.ack(self.acked)
            self.p.stats.windows_acked += len(self.acked)
            self.acked = []

    def _goodbye(self) -> None:
        """Retained ``offline`` (a clean disconnect sends no Last Will), then DISCONNECT."""
        info = self.client.publish(
            self.p.topics.state, self.p.state_payload("offline", reason="stopped"), qos=1, retain=True
        )
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if self.client.loop(LOOP_SECONDS) != paho.MQTT_ERR_SUCCESS:
                break
        self._ack()
        self.client.disconnect()
        self.client.loop(LOOP_SECONDS)

    def close(self) -> None:
        """Close the socket if it is still open; fleet events without a PUBACK go again next time."""
        if self.side_inflight:
            self.p._put_back(list(self.side_inflight.values()))  # noqa: SLF001
            self.side_inflight.clear()
        if self.connected:
            self.client.disconnect()
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.p.stats.connected = False
