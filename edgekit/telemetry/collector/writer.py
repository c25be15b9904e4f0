"""The collector's writer: batches of messages parsed, committed to the store in one transaction, then acknowledged.

The writer waits up to ``max_delay`` for a message, takes everything queued behind it (at most ``max_batch``
messages; what arrived during the last commit is the next batch), parses it, commits it in one transaction, and
only then hands the messages back to be acknowledged. A message that is not a valid edgekit message is logged,
counted as rejected and acknowledged (sending it again would not make it valid); one that speaks for another
device than its topic's is counted as ``spoofed`` as well. A store that fails (PostgreSQL restarting) is retried
with backoff, holding the batch unacknowledged.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit.errors import EdgekitError, TelemetryError
from edgekit.telemetry.collector.spoof import foreign_claim
from edgekit.telemetry.messages import EventRow, StateRow, WindowRow, parse_message
from edgekit.telemetry.store import Added
from edgekit_runtime.mqtt.backoff import Backoff

if TYPE_CHECKING:
    import random

    from edgekit.telemetry.collector.settings import CollectorSettings
    from edgekit.telemetry.store import Store
    from edgekit_runtime.mqtt.connection import Message

logger = logging.getLogger("edgekit.telemetry.collector")


@dataclass(frozen=True)
class CollectorCounts:
    """What a collector did so far."""

    #: messages that arrived
    received: int = 0
    #: windows stored for the first time
    stored: int = 0
    #: windows that were already stored
    duplicates: int = 0
    #: messages that were not valid edgekit messages
    rejected: int = 0
    #: of those, messages whose payload names another fleet or device than their topic
    spoofed: int = 0
    #: state messages stored
    states: int = 0
    #: command events stored for the first time
    events: int = 0
    #: command events that were already stored
    duplicate_events: int = 0


class Writer:
    """The writer thread's work: messages :meth:`put` in, committed to ``store``, then onto ``acks``."""

    def __init__(self, settings: CollectorSettings, store: Store, rng: random.Random) -> None:
        """Get ready to commit into ``store``."""
        self.settings = settings
        self.store = store
        self.inbox: queue.Queue[Message] = queue.Queue()
        #: messages committed, for the network thread to acknowledge
        self.acks: collections.deque[Message] = collections.deque()
        self._rng = rng
        self._counts = dict.fromkeys(CollectorCounts.__dataclass_fields__, 0)
        self._counts_lock = threading.Lock()

    @property
    def counts(self) -> CollectorCounts:
        """The counters so far."""
        with self._counts_lock:
            return CollectorCounts(**self._counts)

    def put(self, message: Message) -> None:
        """From the network thread: a message arrived."""
        self._count(received=1)
        self.inbox.put(message)

    def _count(self, **more: int) -> None:
        with self._counts_lock:
            for name, value in more.items():
                self._counts[name] += value

    def run(self, stopping: threading.Event, done: threading.Event) -> None:
        """Commit batches until ``stopping``, then what is queued at that moment; ``done`` is set at the end."""
        try:
            while not stopping.is_set():
                batch = self._gather(wait=True)
                if batch:
                    self._commit(batch, stopping)
            # stopping: commit what is queued now, not what keeps arriving (the broker keeps that for next time)
            for _ in range(self.inbox.qsize() // self.settings.max_batch + 1):
                batch = self._gather(wait=False)
                if batch:
                    self._commit(batch, stopping)
        finally:
            done.set()

    def _gather(self, *, wait: bool) -> list[Message]:
        try:
            batch = [self.inbox.get(timeout=self.settings.max_delay) if wait else self.inbox.get_nowait()]
        except queue.Empty:
            return []
        while len(batch) < self.settings.max_batch and not self.inbox.empty():  # the writer is the only reader
            batch.append(self.inbox.get_nowait())
        return batch

    def _commit(self, batch: list[Message], stopping: threading.Event) -> None:
        windows: list[WindowRow] = []
        states: list[StateRow] = []
        events: list[EventRow] = []
        rejected = spoofed = 0
        for message in batch:
            try:
                parsed = parse_message(message.topic, message.payload, received=message.received)
            except TelemetryError as exc:
                claim = foreign_claim(message.topic, message.payload)
                logger.warning("rejected a message: %s", claim or exc)
                rejected += 1
                if claim is not None:
                    spoofed += 1
                continue
            except Exception:  # a bug in parsing must not stop collecting (nor hold the message forever)
                logger.exception("rejected a message on %s that the parser failed on", message.topic)
                rejected += 1
                continue
            windows.extend(parsed.windows)
            if parsed.state is not None:
                states.append(parsed.state)
            if parsed.event is not None:
                events.append(parsed.event)
        delays = Backoff(self.settings.reconnect_min, self.settings.reconnect_max, self._rng)
        added = Added(new=0, duplicates=0)
        while windows or states or events:
            try:
                added = self.store.add_windows(windows, states, events)
                break
            except Exception as exc:  # noqa: BLE001 (whatever the store raised, the batch stays unacknowledged)
                text = str(exc) if isinstance(exc, EdgekitError) else repr(exc)
                if stopping.is_set():
                    logger.error("%d messages not stored (%s): the broker sends them again", len(batch), text)  # noqa: TRY400
                    return
                delay = delays.next()
                logger.warning("cannot store %d messages (%s): retrying in %.1f s", len(batch), text, delay)
                stopping.wait(delay)
        self._count(
            stored=added.new,
            duplicates=added.duplicates,
            rejected=rejected,
            spoofed=spoofed,
            states=added.states,
            events=added.events,
            duplicate_events=added.duplicate_events,
        )
        self.acks.extend(batch)
