"""The recorder: requests go into the open window, which is closed every ``interval`` seconds.

A closed window is written to the outbox, and a new one opened.

:meth:`Recorder.record` is called by the server for each inference request, from the event loop; the
window is closed on the recorder's own thread. A lock guards the open window (held for microseconds by
either side), so a request is counted in exactly one window. Closing a window, counting its buffered inputs
and writing it durably happens off the event loop. A window that cannot be written (a full disk) is lost and
counted in the outbox's ``dropped`` count, which the windows sent from then on carry to the collector; serving
goes on. The first window lost is a warning, and so is the first written again (with how many were lost).

What goes into the outbox is the window's JSON without ``seq`` and ``outbox`` (a
:class:`~edgekit_runtime.contract.telemetry.WindowBody`): the publisher adds both when
it sends, since the sequence number is the outbox's key and the drop count is the one at sending time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from edgekit_runtime.contract.telemetry import ModelIdentity, RuntimeInfo, System, WindowBody
from edgekit_runtime.errors import ConfigError, TelemetryError
from edgekit_runtime.telemetry.window import Window, parse_reference

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy as np

    from edgekit_runtime.telemetry.outbox import Outbox
    from edgekit_runtime.telemetry.system import SystemSampler

logger = logging.getLogger("edgekit_runtime.telemetry")


@dataclass(frozen=True)
class Identity:
    """Who sends: the fleet, the device, the model it serves and the runtime's version."""

    fleet: str
    device: str
    model: Mapping[str, Any] = field(default_factory=dict)
    runtime_version: str = ""


@dataclass(frozen=True)
class RecorderSettings:
    """How windows are cut and judged."""

    #: seconds per window
    interval: float = 10.0
    #: PSI above which a feature is flagged as drifting
    psi_threshold: float = 0.2
    #: values a feature needs in a window before its PSI is computed
    min_samples: int = 50
    #: successful requests a second whose inputs and first output are kept for the feature statistics and
    #: class counts (the first ones of each second); the rest count in requests, batch sizes and latency
    sample_rate: float = 1000.0

    def __post_init__(self) -> None:
        """Refuse windows that cannot work."""
        if not 0.05 <= self.interval <= 86_400:  # noqa: PLR2004
            raise ConfigError(f"--telemetry-interval {self.interval} is out of range: use 0.05 to 86400 seconds")
        if self.psi_threshold <= 0:
            raise ConfigError(f"psi_threshold {self.psi_threshold} flags everything: use a value > 0")
        if self.min_samples < 1:
            raise ConfigError(f"min_samples {self.min_samples} is not a count: use 1 or more")
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate {self.sample_rate} keeps no inputs: use requests per second > 0")


class _Losses:
    """Windows lost in a row, and their requests (windows may close on two threads: the tick and a new model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.windows = 0
        self.requests = 0

    def add(self, requests: int) -> int:
        """One more window lost; how many in a row now."""
        with self._lock:
            self.windows += 1
            self.requests += requests
            return self.windows

    def take(self) -> tuple[int, int]:
        """(windows, requests) lost since the last call, and start again."""
        with self._lock:
            taken = (self.windows, self.requests)
            self.windows = self.requests = 0
        return taken


class Recorder:
    """Counts requests into windows and writes each closed window to the outbox."""

    def __init__(
        self,
        outbox: Outbox,
        identity: Identity,
        *,
        reference: Mapping[str, Any] | None = None,
        settings: RecorderSettings | None = None,
        sampler: SystemSampler | None = None,
        clock: Callable[[], float] = time.time,
        on_window: Callable[[int], None] | None = None,
    ) -> None:
        """Open the first window now; ``on_window(seq)`` is told of each window written."""
        self.outbox = outbox
        self.identity = identity
        self.settings = settings or RecorderSettings()
        self._reference = parse_reference(reference or {})
        self._sampler = sampler
        self._clock = clock
        self._on_window = on_window
        self._lock = threading.Lock()
        self._window = Window(clock(), self._reference, sample_rate=self.settings.sample_rate)
        self._stop = threading.Event()
        self._count_now = threading.Event()
        self._reschedule = threading.Event()
        self._thread: threading.Thread | None = None
        #: windows (and their requests) lost since the last one written: said once it is written again
        self._losing = _Losses()
        self._model = _model_identity(identity.model)

    def record(
        self,
        seconds: float,
        *,
        inputs: Mapping[str, np.ndarray] | None = None,
        first_output: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """One inference request: its latency, and its inputs and first output when it succeeded."""
        with self._lock:
            window = self._window
            window.record(seconds, inputs=inputs, first_output=first_output, error=error)
        if window.full and self._thread is not None:
            self._count_now.set()  # the recorder's thread counts the buffer, off the event loop

    def record_taken(self, taken: list[Any]) -> None:
        """Requests a worker process recorded and sampled (its window's :meth:`~Window.take`), into the open window."""
        with self._lock:
            window = self._window
            window.add(taken)
        if window.full and self._thread is not None:
            self._count_now.set()

    def set_model(self, model: Mapping[str, Any], reference: Mapping[str, Any] | None) -> None:
        """Close the open window under the old model; the next ones describe ``model``."""
        self.close_window()
        with self._lock:
            self.identity = Identity(
                self.identity.fleet, self.identity.device, dict(model), self.identity.runtime_version
            )
            self._model = _model_identity(model)
            self._reference = parse_reference(reference or {})
            self._window = Window(self._clock(), self._reference, sample_rate=self.settings.sample_rate)

    def set_interval(self, seconds: float) -> None:
        """Cut windows of ``seconds`` from now on: the open window is closed at once, the next ``seconds`` later.

        Any thread; the recorder's own closes the window (as on a tick). Windows carry their own start and end,
        so the collector needs no telling; the state message does
        (:meth:`edgekit_runtime.telemetry.service.Telemetry.set_interval`).
        """
        self.settings = dataclasses.replace(self.settings, interval=seconds)  # checked: 0.05 to 86400 s
        if self._thread is not None:
            self._reschedule.set()
            self._count_now.set()

    def close_window(self) -> int | None:
        """Close the open window, write it to the outbox and open the next.

        Returns its sequence number, or ``None`` when it could not be written.
        """
        now = self._clock()
        with self._lock:
            window = self._window
            self._window = Window(now, self._reference, sample_rate=self.settings.sample_rate)
        numbers = window.numbers(psi_threshold=self.settings.psi_threshold, min_samples=self.settings.min_samples)
        body = WindowBody(
            fleet=self.identity.fleet,
            device=self.identity.device,
            window_start=window.start,
            window_end=now,
            model=self._model,
            runtime=RuntimeInfo(self.identity.runtime_version),
            system=System(**self._sampler.sample()) if self._sampler is not None else None,
            **msgspec.structs.asdict(numbers),
        )
        try:
            seq = self.outbox.append(msgspec.json.encode(body))
        except TelemetryError as exc:
            if self._losing.add(body.requests) == 1:
                logger.warning("telemetry window %.0f-%.0f lost: %s", body.window_start, body.window_end, exc)
            else:
                logger.debug("telemetry window %.0f-%.0f lost too: %s", body.window_start, body.window_end, exc)
            return None
        windows, requests = self._losing.take()
        if windows:
            logger.warning(
                "telemetry: the outbox stores windows again (seq %d); %d before it (%d requests) were lost, "
                "and are counted in outbox.dropped",
                seq,
                windows,
                requests,
            )
        if self._on_window is not None:
            self._on_window(seq)
        return seq

    def start(self) -> None:
        """Close a window every ``interval`` seconds on a thread of the recorder's own."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="edgekit-telemetry-windows", daemon=True)
        self._thread.start()

    def _count_buffer(self) -> None:
        """Count the open window's buffer so far, holding the lock only to take it."""
        with self._lock:
            window = self._window
            taken = window.take()
        window.count(taken)  # count() and record() touch different fields: recording goes on meanwhile

    def _run(self) -> None:
        deadline = time.monotonic() + self.settings.interval
        while not self._stop.is_set():
            if self._count_now.wait(max(0.0, deadline - time.monotonic())):
                self._count_now.clear()
                if self._reschedule.is_set():  # a new interval: close the open window now, count from here
                    self._reschedule.clear()
                    deadline = time.monotonic()
                elif not self._stop.is_set() and time.monotonic() < deadline:
                    try:
                        self._count_buffer()
                    except Exception:  # the window's numbers may be short; the windows that follow are not
                        logger.exception("counting a telemetry buffer failed")
                    continue
            if self._stop.is_set():
                break
            try:
                self.close_window()
            except Exception:  # a bug here must not stop the windows that follow
                logger.exception("closing a telemetry window failed")
            interval = self.settings.interval
            deadline += interval
            behind = time.monotonic() - deadline
            if behind > interval:  # the machine was suspended, or a write stalled: skip, do not burst
                deadline += interval * (behind // interval)

    def stop(self, *, final: bool = True) -> None:
        """Stop the thread; with ``final``, write the open window too (a clean stop loses nothing)."""
        self._stop.set()
        self._count_now.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final:
            self.close_window()


def _model_identity(model: Mapping[str, Any]) -> ModelIdentity:
    """The served model as windows name it (``serve`` gives every field; one missing is sent empty)."""
    return ModelIdentity(**{name: str(model.get(name) or "") for name in ModelIdentity.__struct_fields__})
