"""The collector's network thread: one MQTT 5 connection with a persistent session, kept up.

It connects with ``clean_start=False`` and a session expiry (so the broker keeps the subscriptions and queues
messages while the collector is away), subscribes on every connection (a broker without persistence forgets),
hands each message to the writer, and acknowledges what the writer committed, only on the connection it came in
on (else the broker sends it again). When the broker goes away it reconnects with exponential backoff and full
jitter. Everything here runs on this one thread; the connection is the one MQTT layer's
(:mod:`edgekit_runtime.mqtt`), made with ``manual_ack``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from edgekit_runtime.mqtt.backoff import Backoff
from edgekit_runtime.mqtt.connection import Connected, ConnectRefused, Disconnected, Subscribed

if TYPE_CHECKING:
    import random

    from edgekit.telemetry.collector.settings import CollectorSettings
    from edgekit.telemetry.collector.writer import Writer
    from edgekit_runtime.mqtt.connection import Connection, Event

logger = logging.getLogger("edgekit.telemetry.collector")

#: how long one loop waits in select(): the most an acknowledgement waits to be sent
TICK_S = 0.01


class Network:
    """The network thread's work: connect, subscribe, hand messages over, acknowledge, reconnect."""

    def __init__(
        self,
        settings: CollectorSettings,
        connection: Connection,
        session_expiry: int,
        writer: Writer,
        rng: random.Random,
    ) -> None:
        """Keep ``connection`` up, handing each message to ``writer`` and acknowledging what it committed."""
        self.settings = settings
        self.connection = connection
        self.session_expiry = session_expiry
        self.writer = writer
        #: set while connected and subscribed
        self.subscribed = threading.Event()
        self._delays = Backoff(settings.reconnect_min, settings.reconnect_max, rng)
        self._subscribe_mid: int | None = None
        self._accepted = False
        self._closing = False

    def run(self, stopping: threading.Event, writer_done: threading.Event) -> None:
        """Until ``stopping``; then, once the writer is done, the last acknowledgements and a DISCONNECT."""
        where = self.settings.safe_url
        while not stopping.is_set():
            try:
                self.connection.connect(clean_start=False, session_expiry=self.session_expiry)
            except (OSError, ValueError) as exc:
                delay = self._delays.next()
                logger.warning("broker %s unreachable (%s): retrying in %.1f s", where, exc, delay)
                stopping.wait(delay)
                continue
            before = self.connection.number
            self._serve(writer_done)
            if writer_done.is_set():
                break
            if self.connection.number != before:  # a connection the broker accepted
                self._delays.reset()
            delay = self._delays.next()
            logger.info("reconnecting to %s in %.1f s", where, delay)
            stopping.wait(delay)
        writer_done.wait()
        self._closing = True  # the session stays on the broker
        self._handle(self.connection.disconnect(timeout=2.0))

    def _serve(self, writer_done: threading.Event) -> None:
        """Run one connection until it is lost, or until the writer finished after a stop."""
        self._accepted = False
        while True:
            done = writer_done.is_set()  # before the last acknowledgements, which the writer made before done
            while self.writer.acks:
                self.connection.ack(self.writer.acks.popleft())
            if done:
                return
            try:
                self._handle(self.connection.loop(TICK_S))
            except Exception:  # a bug in a callback must not end collecting
                logger.exception("the MQTT loop failed; reconnecting")
                return
            while not self.connection.messages.empty():  # this thread is the only reader
                self.writer.put(self.connection.messages.get_nowait())
            if not self.connection.alive:
                return

    def _handle(self, events: list[Event]) -> None:
        where = self.settings.safe_url
        for event in events:
            if isinstance(event, Connected):
                self._accepted = True
                logger.info("connected to %s (%s session)", where, "resumed" if event.session_present else "new")
                # subscribe every time: a broker that lost its sessions (no persistence) would otherwise send nothing
                self._subscribe_mid = self.connection.subscribe([topic for topic, _ in self.settings.topics()])
            elif isinstance(event, ConnectRefused):
                logger.warning("broker %s refused the connection: %s", where, event.reason)
            elif isinstance(event, Subscribed) and event.mid == self._subscribe_mid:
                self._on_subscribed(event)
            elif isinstance(event, Disconnected):
                self.subscribed.clear()
                if self._closing:
                    logger.info("disconnected from %s", where)
                elif self._accepted:
                    logger.warning("lost the connection to %s: %s", where, event.reason)
                self._accepted = False

    def _on_subscribed(self, event: Subscribed) -> None:
        topics = [topic for topic, _ in self.settings.topics()]
        refused = [
            f"{topic}: {reason}" for topic, reason in zip(topics, event.refusals, strict=False) if reason is not None
        ]
        if refused:
            logger.error("broker %s refused subscriptions: %s", self.settings.safe_url, "; ".join(refused))
            return
        logger.info("subscribed to %s", ", ".join(topics))
        self.subscribed.set()
