"""The collector: its network and writer threads, started and stopped together."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import TelemetryError
from edgekit.telemetry.collector.network import Network
from edgekit.telemetry.collector.repair import Repair
from edgekit.telemetry.collector.writer import Writer
from edgekit_runtime.mqtt.paho_connection import PahoConnection

if TYPE_CHECKING:
    from types import TracebackType

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgekit.telemetry.collector.settings import CollectorSettings
    from edgekit.telemetry.collector.writer import CollectorCounts
    from edgekit.telemetry.store import Store
    from edgekit_runtime.mqtt.connection import Connector

#: seconds the broker keeps the collector's session while it is away, unless told otherwise
SESSION_EXPIRY = 86400
#: collectors made in this process, by derived client id: a second one gets "-2"
_INSTANCES: collections.defaultdict[str, itertools.count[int]] = collections.defaultdict(lambda: itertools.count(1))


class Collector:
    """Subscribe to telemetry and store it; ``with Collector(settings, store) as collector: ...``."""

    def __init__(
        self,
        settings: CollectorSettings,
        store: Store,
        *,
        rng: random.Random | None = None,
        connector: Connector = PahoConnection,
        sign_key: Ed25519PrivateKey | None = None,
    ) -> None:
        """Get ready to collect into ``store`` (which the caller opens and closes).

        ``connector`` makes the connection (an in-memory one for tests: :mod:`edgekit_runtime.mqtt.testing`);
        ``sign_key``: the fleet's key, which signs the requests that repair gaps (``None``: gaps are only logged).
        """
        self.settings = settings
        self.store = store
        self.client_id = settings.client_id or stable_client_id(store, settings)
        self.session_expiry = settings.session_expiry if settings.session_expiry is not None else SESSION_EXPIRY
        rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        connection = connector(dataclasses.replace(settings.mqtt, client_id=self.client_id), manual_ack=True)
        self._writer = Writer(settings, store, rng)
        self._network = Network(settings, connection, self.session_expiry, self._writer, rng)
        self.repair = Repair(settings, store, connection, sign_key)
        self._started = False
        self._stopping = threading.Event()
        self._writer_done = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._network.run,
                args=(self._stopping, self._writer_done),
                name="edgekit-collector-network",
                daemon=True,
            ),
            threading.Thread(
                target=self._writer.run,
                args=(self._stopping, self._writer_done),
                name="edgekit-collector-writer",
                daemon=True,
            ),
            threading.Thread(
                target=self.repair.run,
                args=(self._stopping, self._network.subscribed),
                name="edgekit-collector-repair",
                daemon=True,
            ),
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
        return self._network.subscribed.wait(timeout)

    @property
    def running(self) -> bool:
        """Whether both threads are alive (false before :meth:`start` and after :meth:`stop`)."""
        return all(thread.is_alive() for thread in self._threads)

    @property
    def connections(self) -> int:
        """How many connections the broker accepted so far (more than one: it reconnected)."""
        return self._network.connection.number

    @property
    def counts(self) -> CollectorCounts:
        """The counters so far."""
        return self._writer.counts


def stable_client_id(store: Store, settings: CollectorSettings) -> str:
    """``edgekit-collector-<12 hex>`` from the database, the fleet and the share group: the same for every run.

    So a restarted collector resumes its session on the broker, and what the broker queued meanwhile arrives. A
    second collector in one process on the same database and fleet gets ``-2`` (tests run several).
    """
    path = getattr(store, "path", None)  # a SQLite file: the same file from any working directory
    where = str(path.resolve()) if isinstance(path, Path) else store.where
    text = "\n".join([where, settings.fleet, settings.share or "", settings.safe_url])
    name = f"edgekit-collector-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    number = next(_INSTANCES[name])
    return name if number == 1 else f"{name}-{number}"
