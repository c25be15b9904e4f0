"""The collector: its network and writer threads, started and stopped together."""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import socket
import threading
import time
from typing import TYPE_CHECKING

from edgekit.errors import TelemetryError
from edgekit.telemetry.collector.network import Network
from edgekit.telemetry.collector.writer import Writer
from edgekit_runtime.mqtt.paho_connection import PahoConnection

if TYPE_CHECKING:
    from types import TracebackType

    from edgekit.telemetry.collector.settings import CollectorSettings
    from edgekit.telemetry.collector.writer import CollectorCounts
    from edgekit.telemetry.store import Store
    from edgekit_runtime.mqtt.connection import Connector

#: one session per process unless a client id is given: a second collector in the process gets "-2"
_INSTANCES = itertools.count(1)


class Collector:
    """Subscribe to telemetry and store it; ``with Collector(settings, store) as collector: ...``."""

    def __init__(
        self,
        settings: CollectorSettings,
        store: Store,
        *,
        rng: random.Random | None = None,
        connector: Connector = PahoConnection,
    ) -> None:
        """Get ready to collect into ``store`` (which the caller opens and closes).

        ``connector`` makes the connection (an in-memory one for tests: :mod:`edgekit_runtime.mqtt.testing`).
        """
        self.settings = settings
        self.store = store
        self.client_id = settings.client_id or _generated_client_id()
        self.session_expiry = (
            settings.session_expiry if settings.session_expiry is not None else (86400 if settings.client_id else 0)
        )
        rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        connection = connector(dataclasses.replace(settings.mqtt, client_id=self.client_id), manual_ack=True)
        self._writer = Writer(settings, store, rng)
        self._network = Network(settings, connection, self.session_expiry, self._writer, rng)
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


def _generated_client_id() -> str:
    number = next(_INSTANCES)
    suffix = "" if number == 1 else f"-{number}"
    return f"edgekit-collector-{socket.gethostname()}-{os.getpid()}{suffix}"
