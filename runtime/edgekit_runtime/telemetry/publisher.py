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

from edgekit_runtime.errors import ConfigError, TelemetryError
from edgekit_runtime.telemetry.mqtt import make_client
from edgekit_runtime.telemetry.session import Session

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import paho.mqtt.client as paho

    from edgekit_runtime.telemetry.mqtt import MqttSettings, Topics
    from edgekit_runtime.telemetry.outbox import Outbox

logger = logging.getLogger("edgekit_runtime.telemetry")

STATE_SCHEMA = "edgekit.state/1"


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
            session = Session(self)
            try:
                connected = session.run()
            except OSError as exc:  # refused, unreachable, TLS failure: the broker is not there (yet)
                connected = False
                self._note_failure(f"cannot reach the broker at {self.mqtt.safe_url}: {exc}")
            except TelemetryError as exc:  # the outbox cannot be written (a full disk): what was sent goes again
                connected = False  # the backoff grows: no reconnecting in a loop while the disk stays full
                self._note_failure(str(exc))
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
