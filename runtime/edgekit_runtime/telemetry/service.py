"""Telemetry for a served model: outbox, recorder and (with a broker) publisher, started and stopped together.

The outbox lives in the state directory. Without a broker, windows still go to the outbox, ready to be sent
once one is configured. The state directory is locked (``telemetry.lock``) so two runtimes never share an
outbox: each needs its own.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit_runtime import __version__
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.telemetry.mqtt import Topics, check_name
from edgekit_runtime.telemetry.outbox import Outbox, OutboxLimits
from edgekit_runtime.telemetry.publisher import Publisher, PublisherSettings
from edgekit_runtime.telemetry.recorder import Identity, Recorder, RecorderSettings
from edgekit_runtime.telemetry.system import SystemSampler

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from edgekit_runtime.mqtt.settings import MqttSettings

OUTBOX = "telemetry.db"
LOCK = "telemetry.lock"


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``), else ``$XDG_STATE_HOME/edgekit-runtime``."""
    systemd = os.environ.get("STATE_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edgekit-runtime"


def default_device() -> str:
    """The host name, as a topic level."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64]
    return name or "device"


@dataclass(frozen=True)
class TelemetrySettings:
    """Where telemetry is kept and where it goes; the ``serve`` command's telemetry flags map one to one."""

    state_dir: Path = field(default_factory=default_state_dir)
    fleet: str = "default"
    device: str = field(default_factory=default_device)
    recorder: RecorderSettings = field(default_factory=RecorderSettings)
    outbox: OutboxLimits = field(default_factory=OutboxLimits)
    #: the broker; ``None`` keeps windows in the outbox
    mqtt: MqttSettings | None = None
    publisher: PublisherSettings = field(default_factory=PublisherSettings)

    def __post_init__(self) -> None:
        """Check the names."""
        check_name("fleet", self.fleet)
        check_name("device", self.device)


class Telemetry:
    """The running telemetry of one served model."""

    def __init__(
        self, settings: TelemetrySettings, model: Mapping[str, Any], reference: Mapping[str, Any] | None
    ) -> None:
        """``model``: name, version, sha256 and backend, as windows and the state message name them."""
        self.settings = settings
        state_dir = Path(settings.state_dir)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._lock = (state_dir / LOCK).open("w")
        except OSError as exc:
            raise ConfigError(
                f"--state-dir {state_dir} cannot be used ({exc.strerror or exc}): give a writable folder"
            ) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise ConfigError(
                f"--state-dir {state_dir} is in use by another edgekit-runtime: give each its own --state-dir"
            ) from None
        self.outbox = Outbox(state_dir / OUTBOX, settings.outbox)
        self.publisher: Publisher | None = None
        if settings.mqtt is not None:
            state = {
                "model": dict(model),
                "runtime": {"version": __version__},
                "telemetry": {"interval": settings.recorder.interval},
            }
            self.publisher = Publisher(
                self.outbox,
                settings.mqtt,
                Topics(settings.fleet, settings.device),
                state=state,
                settings=settings.publisher,
            )
        self.recorder = Recorder(
            self.outbox,
            Identity(settings.fleet, settings.device, dict(model), __version__),
            reference=reference,
            settings=settings.recorder,
            sampler=SystemSampler(state_dir),
        )

    def record(
        self,
        seconds: float,
        *,
        inputs: Mapping[str, np.ndarray] | None = None,
        first_output: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """One inference request (see :meth:`Recorder.record`)."""
        self.recorder.record(seconds, inputs=inputs, first_output=first_output, error=error)

    def record_taken(self, taken: list[Any]) -> None:
        """Requests a worker process recorded (see :meth:`Recorder.record_taken`)."""
        self.recorder.record_taken(taken)

    def set_model(self, model: Mapping[str, Any], reference: Mapping[str, Any] | None) -> None:
        """A new model is served: the open window is closed, and the next ones and the state name the new one."""
        self.recorder.set_model(model, reference)
        if self.publisher is not None:
            self.publisher.update_state(model=dict(model))

    def set_interval(self, seconds: float) -> None:
        """Windows of ``seconds`` from now on (the open one is closed now); the state message says so."""
        self.recorder.set_interval(seconds)
        if self.publisher is not None:
            self.publisher.update_state(telemetry={"interval": self.recorder.settings.interval})

    def status(self) -> dict[str, float]:
        """What ``/metrics`` says of telemetry (names are ``edgekit_telemetry_`` + the key)."""
        numbers = {
            "outbox_windows": float(self.outbox.count),
            "outbox_replay_windows": float(self.outbox.kept),
            "outbox_bytes": float(self.outbox.size),
            "outbox_dropped_total": float(self.outbox.dropped),
        }
        if self.publisher is not None:
            numbers["broker_connected"] = float(self.publisher.stats.connected)
            numbers["sent_windows_total"] = float(self.publisher.stats.windows_acked)
        return numbers

    def start(self) -> None:
        """Start cutting windows, and sending them if there is a broker."""
        self.recorder.start()
        if self.publisher is not None:
            self.publisher.start()

    def stop(self) -> None:
        """Write the open window, send what the publisher can in its drain time, and close the outbox."""
        self.recorder.stop(final=True)
        if self.publisher is not None:
            self.publisher.stop()
        self.outbox.close()
        self._lock.close()
