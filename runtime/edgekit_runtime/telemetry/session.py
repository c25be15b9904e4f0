"""One connection of the publisher: paho's callbacks and the drain loop, and how windows become messages.

:class:`Session` runs on the thread of :class:`~edgekit_runtime.telemetry.publisher.Publisher`, which owns it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit_runtime.telemetry.outbox import Entry
    from edgekit_runtime.telemetry.publisher import Publisher

logger = logging.getLogger("edgekit_runtime.telemetry")

BATCH_SCHEMA = "edgekit.telemetry-batch/1"
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


class Session:
    """One connection: paho's callbacks and the drain loop."""

    def __init__(self, publisher: Publisher) -> None:
        """A fresh client for ``publisher``, its Last Will set; :meth:`run` connects."""
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
        # subscribe first: the broker handles one connection's packets in order, so whoever sees this device
        # ``online`` can send it a command and know it is subscribed
        for _, topic in self.p._take_subscribe_changes(all_now=True):  # noqa: SLF001
            client.subscribe(topic, qos=1)
        self.p._state_changed.clear()  # noqa: SLF001
        client.publish(self.p.topics.state, self.p.state_payload("online"), qos=1, retain=True)

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
            # held: the outbox's bounds do not drop what is read here until the session ends, so no window both
            # arrives and is counted as dropped
            entries = self.p.outbox.pending(self.settings.pack_windows, after=self.after, hold=True)
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
        self.p.outbox.release()  # nothing of this session is in flight any more
        if self.side_inflight:
            self.p._put_back(list(self.side_inflight.values()))  # noqa: SLF001
            self.side_inflight.clear()
        if self.connected:
            self.client.disconnect()
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.p.stats.connected = False
