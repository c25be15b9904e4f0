"""The collector: subscribe to the fleet's telemetry and events, and store every window exactly once, losing none.

Two threads. The **network** thread runs the MQTT side (:class:`~edgekit.telemetry.mqtt_session.MqttSession`,
the one place paho-mqtt is touched): MQTT 5 with a persistent session (``clean_start=False``), QoS 1
subscriptions, each message put in a queue, and the acknowledgements the writer hands back sent. When the
broker goes away it reconnects with exponential backoff and full jitter. The **writer** thread waits up to
``max_delay`` for a message, takes everything queued behind it (at most ``max_batch`` messages; what arrived
during the last commit is the next batch), parses it, commits it to the :class:`~edgekit.telemetry.store.Store`
in one transaction, and only then asks for the PUBACKs (``manual_ack=True``). A collector that dies before a
commit has acknowledged nothing, so the broker sends those messages again; a window that arrives twice is
stored once (the store is idempotent on ``(fleet, device, seq)``). Command events (``.../events``) take the same
path, idempotent on ``(fleet, device, id, status)``.

An acknowledgement is only sent on the connection its message came in on; a message committed after its
connection was lost is sent again by the broker on the next one, then stored as a duplicate and acknowledged.
A message that is not a valid edgekit message is logged, counted as rejected and acknowledged (sending it
again would not make it valid). So is one whose payload names another fleet or device than its topic (a
window, a batch or one of its windows, a state, an event), and it is counted as ``spoofed`` as well: with one
broker account per device (``edgekit fleet provision``) the topic says who sent it, so a device cannot store
windows (or a future ``seq``, which would make the real ones look like duplicates) in another's name. A store
that fails (PostgreSQL restarting) is retried with backoff, holding the batch unacknowledged.

The session outlives the collector only with a stable ``client_id``: a generated one (host and process id)
gets a session expiry of 0, since no later run would resume it, and an orphan session would keep receiving
its share of a shared subscription (Mosquitto queues shared messages for offline members too).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from paho.mqtt.subscribeoptions import SubscribeOptions

from edgekit.errors import ConfigError, EdgekitError, TelemetryError
from edgekit.telemetry.messages import NAME, EventRow, StateRow, WindowRow, parse_message, parse_topic
from edgekit.telemetry.mqtt_session import MqttSession, Received
from edgekit.telemetry.store import Added

if TYPE_CHECKING:
    from types import TracebackType

    from edgekit.telemetry.store import Store


logger = logging.getLogger("edgekit.telemetry.collector")

#: one session per process unless a client id is given: a second collector in the process gets "-2"
_INSTANCES = itertools.count(1)


@dataclass(frozen=True)
class CollectorSettings:
    """Where the broker is, what to subscribe to, and how to batch; checked when made."""

    #: ``mqtt://HOST[:PORT]`` (port 1883) or ``mqtts://HOST[:PORT]`` (TLS, port 8883)
    broker: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: CA bundle to check the broker's certificate against (default: the system's)
    ca_file: Path | None = None
    #: client certificate and its key, for brokers that ask for one
    cert_file: Path | None = None
    key_file: Path | None = None
    #: the fleet to collect, or ``+`` for all
    fleet: str = "+"
    #: a shared-subscription group: collectors in one group split the telemetry between them
    share: str | None = None
    #: the MQTT client id; give a stable one for a session that outlives restarts
    client_id: str | None = None
    #: seconds the broker keeps the session (and queues messages) while the collector is away; the default is
    #: one day with a given ``client_id`` and 0 with a generated one, which no later run would ever resume
    session_expiry: int | None = None
    keepalive: int = 30
    #: the most messages one transaction commits
    max_batch: int = 500
    #: how long the writer waits for a first message before looking at whether it should stop
    max_delay: float = 0.05
    #: reconnect backoff: full jitter over ``min(reconnect_max, reconnect_min * 2**attempt)`` seconds
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0

    def __post_init__(self) -> None:
        """Check every field, naming the option to fix."""
        self.address()  # raises on a bad URL
        if self.fleet != "+" and not NAME.fullmatch(self.fleet):
            raise ConfigError(f"--fleet '{self.fleet}' is not a fleet name: use + or 1 to 64 of A-Z a-z 0-9 . _ -")
        if self.share is not None and not NAME.fullmatch(self.share):
            raise ConfigError(f"--share '{self.share}' is not a group name: use 1 to 64 of A-Z a-z 0-9 . _ -")
        if self.client_id is not None and not (0 < len(self.client_id) <= 256 and "\x00" not in self.client_id):  # noqa: PLR2004
            raise ConfigError(f"--client-id {self.client_id!r} is not a client id: use 1 to 256 characters")
        if self.session_expiry is not None and not 0 <= self.session_expiry <= 2**32 - 1:
            raise ConfigError(f"--session-expiry {self.session_expiry} is out of range: use 0 to 4294967295 seconds")
        if not 5 <= self.keepalive <= 65535:  # noqa: PLR2004
            raise ConfigError(f"keepalive {self.keepalive} is out of range: use 5 to 65535 seconds")
        if self.max_batch < 1 or self.max_delay <= 0:
            raise ConfigError("max_batch must be 1 or more and max_delay more than 0 seconds")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ConfigError("reconnect backoff needs 0 < reconnect_min <= reconnect_max")
        self._check_tls()

    def _check_tls(self) -> None:
        for flag, path in (("--ca", self.ca_file), ("--cert", self.cert_file), ("--key", self.key_file)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{flag} {path}: no such file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("a client certificate needs both --cert and --key: give both, or neither")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ConfigError("--ca and --cert need TLS: use an mqtts:// broker URL")

    def address(self) -> tuple[str, int]:
        """The broker's host and port."""
        parts = urlsplit(self.broker)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                f"--broker '{self.safe_url}' is not a broker URL: use mqtt://HOST[:PORT], or mqtts:// for TLS"
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"--broker '{self.safe_url}' has a port that is not a TCP port: use 1 to 65535") from None
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"--broker '{self.safe_url}' has a path or query: give only mqtt://HOST[:PORT]")
        return parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS."""
        return self.broker.lower().startswith("mqtts:")

    @property
    def safe_url(self) -> str:
        """The broker URL without user or password, for messages and logs."""
        parts = urlsplit(self.broker)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()

    def credentials(self) -> tuple[str | None, str | None]:
        """User name and password: from the URL, else from ``username`` and ``password``."""
        parts = urlsplit(self.broker)
        user = unquote(parts.username) if parts.username else self.username
        password = unquote(parts.password) if parts.password else self.password
        return user, password

    def topics(self) -> list[tuple[str, SubscribeOptions]]:
        """What to subscribe to, all QoS 1: telemetry and events (shared when ``share`` is set), and state."""
        shared = "" if self.share is None else f"$share/{self.share}/"
        return [
            (f"{shared}edgekit/{self.fleet}/+/telemetry", SubscribeOptions(qos=1)),
            (f"{shared}edgekit/{self.fleet}/+/events", SubscribeOptions(qos=1)),
            (f"edgekit/{self.fleet}/+/state", SubscribeOptions(qos=1)),
        ]


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


def backoff(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: a uniform wait in ``[0, min(high, low * 2**attempt)]``."""
    return rng.uniform(0.0, min(high, low * 2.0 ** min(attempt, 32)))


class Collector:
    """Subscribe to telemetry and store it; ``with Collector(settings, store) as collector: ...``."""

    def __init__(self, settings: CollectorSettings, store: Store, *, rng: random.Random | None = None) -> None:
        """Get ready to collect into ``store`` (which the caller opens and closes)."""
        self.settings = settings
        self.store = store
        self.client_id = settings.client_id or _generated_client_id()
        self.session_expiry = (
            settings.session_expiry if settings.session_expiry is not None else (86400 if settings.client_id else 0)
        )
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._acks: collections.deque[Received] = collections.deque()
        self._mqtt = MqttSession(settings, self.client_id, self._receive)
        self._counts = dict.fromkeys(
            ("received", "stored", "duplicates", "rejected", "spoofed", "states", "events", "duplicate_events"), 0
        )
        self._counts_lock = threading.Lock()
        self._started = False
        self._stopping = threading.Event()
        self._writer_done = threading.Event()
        self._threads = [
            threading.Thread(target=self._network, name="edgekit-collector-network", daemon=True),
            threading.Thread(target=self._writer, name="edgekit-collector-writer", daemon=True),
        ]

    def __enter__(self) -> Collector:  # noqa: PYI034  (typing.Self needs Python 3.11; we support 3.10)
        """Start collecting."""
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Stop: commit what arrived, acknowledge it, disconnect."""
        self.stop()

    def start(self) -> None:
        """Start the network and writer threads; connecting happens (and is retried) in the background."""
        if self._started:
            raise TelemetryError("a collector starts once: make a new Collector to collect again")
        self._started = True
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what was received, then disconnect, keeping the session on the broker."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed; whether that happened within ``timeout`` seconds."""
        return self._mqtt.subscribed.wait(timeout)

    @property
    def running(self) -> bool:
        """Whether both threads are alive (false before :meth:`start` and after :meth:`stop`)."""
        return all(thread.is_alive() for thread in self._threads)

    @property
    def connections(self) -> int:
        """How many connections the broker accepted so far (more than one: it reconnected)."""
        return self._mqtt.connection

    @property
    def counts(self) -> CollectorCounts:
        """The counters so far."""
        with self._counts_lock:
            return CollectorCounts(**self._counts)

    def _count(self, **more: int) -> None:
        with self._counts_lock:
            for name, value in more.items():
                self._counts[name] += value

    def _receive(self, message: Received) -> None:
        """From the network thread: queue ``message`` for the writer."""
        self._count(received=1)
        self._inbox.put(message)

    def _network(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._mqtt.connect(self.session_expiry)
            except (OSError, ValueError) as exc:
                delay = backoff(attempt, self.settings.reconnect_min, self.settings.reconnect_max, self._rng)
                attempt += 1
                logger.warning("broker %s unreachable (%s): retrying in %.1f s", self.settings.safe_url, exc, delay)
                self._stopping.wait(delay)
                continue
            before = self._mqtt.connection
            self._serve_connection()
            if self._writer_done.is_set():
                break
            attempt = 0 if self._mqtt.connection != before else attempt + 1  # a connection the broker accepted
            delay = backoff(attempt, self.settings.reconnect_min, self.settings.reconnect_max, self._rng)
            logger.info("reconnecting to %s in %.1f s", self.settings.safe_url, delay)
            self._stopping.wait(delay)
        self._writer_done.wait()
        self._mqtt.disconnect(timeout=2.0)

    def _serve_connection(self) -> None:
        """Run one connection until it is lost, or until the writer finished after a stop."""
        while True:
            done = self._writer_done.is_set()  # before the last acknowledgements, which the writer made before done
            while self._acks:
                self._mqtt.ack(self._acks.popleft())
            if done:
                return
            try:
                alive = self._mqtt.loop()
            except Exception:  # a bug in a callback must not end collecting
                logger.exception("the MQTT loop failed; reconnecting")
                alive = False
            if not alive:
                return

    def _writer(self) -> None:
        try:
            while not self._stopping.is_set():
                batch = self._gather(wait=True)
                if batch:
                    self._commit(batch)
            # stopping: commit what is queued now, not what keeps arriving (the broker keeps that for next time)
            for _ in range(self._inbox.qsize() // self.settings.max_batch + 1):
                batch = self._gather(wait=False)
                if batch:
                    self._commit(batch)
        finally:
            self._writer_done.set()

    def _gather(self, *, wait: bool) -> list[Received]:
        try:
            batch = [self._inbox.get(timeout=self.settings.max_delay) if wait else self._inbox.get_nowait()]
        except queue.Empty:
            return []
        while len(batch) < self.settings.max_batch and not self._inbox.empty():  # the writer is the only reader
            batch.append(self._inbox.get_nowait())
        return batch

    def _commit(self, batch: list[Received]) -> None:
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
        attempt = 0
        added = Added(new=0, duplicates=0)
        while windows or states or events:
            try:
                added = self.store.add_windows(windows, states, events)
                break
            except Exception as exc:  # noqa: BLE001 (whatever the store raised, the batch stays unacknowledged)
                text = str(exc) if isinstance(exc, EdgekitError) else repr(exc)
                if self._stopping.is_set():
                    logger.error("%d messages not stored (%s): the broker sends them again", len(batch), text)  # noqa: TRY400
                    return
                delay = backoff(attempt, self.settings.reconnect_min, self.settings.reconnect_max, self._rng)
                attempt += 1
                logger.warning("cannot store %d messages (%s): retrying in %.1f s", len(batch), text, delay)
                self._stopping.wait(delay)
        self._count(
            stored=added.new,
            duplicates=added.duplicates,
            rejected=rejected,
            spoofed=spoofed,
            states=added.states,
            events=added.events,
            duplicate_events=added.duplicate_events,
        )
        self._acks.extend(batch)


def foreign_claim(topic: str, payload: bytes) -> str | None:
    """What a device's message says that its topic does not: another fleet or device (``None``: nothing).

    Asked of rejected messages only, to tell a spoof from a malformed message; the parser has refused either.
    """
    try:
        fleet, device, _ = parse_topic(topic)
        doc = json.loads(payload)
    except (TelemetryError, ValueError, RecursionError):  # a JSONDecodeError and a UnicodeDecodeError are both
        return None
    if not isinstance(doc, dict):
        return None
    windows = doc.get("windows")
    claims = [doc, *(w for w in windows if isinstance(w, dict))] if isinstance(windows, list) else [doc]
    for claim in claims:
        for key, expected in (("fleet", fleet), ("device", device)):
            if key in claim and claim[key] != expected:
                said = repr(claim[key])
                said = said if len(said) <= 40 else said[:37] + "..."  # noqa: PLR2004
                return (
                    f"{topic}: {key} {said} in the payload does not match the topic's: a device may only speak for"
                    " itself (counted as spoofed)"
                )
    return None


def _generated_client_id() -> str:
    number = next(_INSTANCES)
    suffix = "" if number == 1 else f"-{number}"
    return f"edgekit-collector-{socket.gethostname()}-{os.getpid()}{suffix}"
