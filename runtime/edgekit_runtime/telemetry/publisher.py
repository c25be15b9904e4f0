"""The publisher: drains the outbox to the broker in order, QoS 1, deleting a window only after its PUBACK.

One thread owns the connection (:mod:`edgekit_runtime.mqtt`) and does everything with it (connect, publish, the
network loop), so no paho call crosses threads. Per connection (a :class:`~edgekit_runtime.telemetry.session.Session`):

- the Last Will is a retained ``offline`` state; on CONNACK the retained ``online`` state is published;
- windows are read from the outbox past the last one sent and published, at most ``max_inflight`` messages
  awaiting their PUBACK at a time; when more than one window waits (a backlog after an outage), up to
  ``pack_windows`` of them (and ``pack_bytes``) go in one batch message;
- each PUBACK deletes that message's windows from the outbox, in one transaction per network loop turn.

A lost connection ends the session; the next one starts from the oldest window still in the outbox (some
may arrive twice: the collector keeps one per ``(device, seq)``). Reconnects wait an exponential backoff
with full jitter (:mod:`edgekit_runtime.mqtt.backoff`): a delay drawn uniformly from 0 to
``min(backoff_max, backoff_initial * 2**attempt)``, so a fleet that lost the same broker does not come back in
lockstep. Every session is a fresh connection with a clean start: paho's own in-memory resend would only
duplicate what the outbox resends.

The publisher is the device's :class:`~edgekit_runtime.telemetry.channel.Channel` too: the fleet agent publishes
its events, subscribes to its commands and changes the retained state through it.

With MQTT 5 each message has a message expiry (a collector that stays away longer than that does not get it
from the broker's queue), a content type, and user properties: ``schema``, ``seq`` (``FIRST-LAST``) and
``windows``. MQTT 3.1.1 brokers get none of these; the payload carries the same.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit_runtime.errors import ConfigError, TelemetryError
from edgekit_runtime.mqtt.backoff import Backoff
from edgekit_runtime.mqtt.paho_connection import PahoConnection
from edgekit_runtime.telemetry.channel import Channel
from edgekit_runtime.telemetry.session import PublisherStats, Session, Stop

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgekit_runtime.mqtt.connection import Connection, Connector
    from edgekit_runtime.mqtt.settings import MqttSettings
    from edgekit_runtime.telemetry.mqtt import Topics
    from edgekit_runtime.telemetry.outbox import Outbox

logger = logging.getLogger("edgekit_runtime.telemetry")


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


class Publisher(Channel):
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
        connector: Connector = PahoConnection,
    ) -> None:
        """Get ready to drain ``outbox`` (nothing connects before :meth:`start`).

        ``state``: what the retained ``online`` message says besides status (model, runtime, ...);
        ``connector``: makes the connections (an in-memory one for tests: :mod:`edgekit_runtime.mqtt.testing`).
        """
        super().__init__(topics, state)
        self.outbox = outbox
        self.mqtt = dataclasses.replace(mqtt, client_id=mqtt.client_id or f"edgekit-{topics.fleet}-{topics.device}")
        self.settings = settings or PublisherSettings()
        self.stats = PublisherStats()
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self._connector = connector
        self._stop = Stop()
        self._thread: threading.Thread | None = None

    def session(self, connection: Connection) -> Session:
        """A session of this publisher over ``connection``."""
        return Session(connection, self, self.outbox, self.settings, self.stats)

    def start(self) -> None:
        """Connect and drain on a thread of its own (it keeps trying until :meth:`stop`)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgekit-telemetry-mqtt", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Send what waits for up to ``drain_seconds``, publish ``offline``, disconnect; the rest stays stored."""
        self._stop.set(self.settings.drain_seconds)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def _run(self) -> None:
        delays = Backoff(self.settings.backoff_initial, self.settings.backoff_max, self._rng)
        while not self._stop.is_set():
            session: Session | None = None
            try:
                session = self.session(self._connector(self.mqtt, will=self.will()))
                connected = session.run(self._stop)
            except OSError as exc:  # refused, unreachable, TLS failure: the broker is not there (yet)
                connected = False
                self.stats.note_failure(f"cannot reach the broker at {self.mqtt.safe_url}: {exc}")
            except TelemetryError as exc:  # the outbox cannot be written (a full disk): what was sent goes again
                connected = False  # the backoff grows: no reconnecting in a loop while the disk stays full
                self.stats.note_failure(str(exc))
            except Exception as exc:  # a bug, or the outbox failing: log it, and try again after the backoff
                connected = False
                logger.exception("telemetry: the publisher's session failed")
                self.stats.last_error = f"session failed: {exc}"
            finally:
                if session is not None:
                    session.close()
            if connected:
                delays.reset()
            if self._stop.is_set():
                break
            delay = delays.next()
            logger.debug("reconnecting to %s in %.2f s", self.mqtt.safe_url, delay)
            self._stop.wait(delay)
