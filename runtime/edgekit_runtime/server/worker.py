"""A worker process of ``serve --workers N``: one more server on the same port, steered by the serving process.

The serving process (:mod:`.workers`) starts it as ``python -m edgekit_runtime.server.worker FD``, FD being
its end of the channel (:mod:`.ipc`), and sends it a :class:`~.worker_spec.WorkerSpec` first: the server's settings and
how bundles load, as the ``serve`` command made them of its flags, the bundle to serve and the port. The
worker loads and self-tests the bundle as the command would, listens on the port with ``SO_REUSEPORT`` (the
kernel spreads new connections over the workers' sockets) and serves. It keeps no state of its own: its
telemetry goes to the serving process (:class:`Forwarder`), which owns the device's one window and outbox;
its ``/metrics`` asks the serving process for every worker's numbers; the serving process asks it for its
metrics and deploy health counts, and tells it to swap models. When the channel ends (the serving process is
gone), it stops as on SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from edgekit_runtime.errors import EdgekitError, WorkerError
from edgekit_runtime.server.ipc import Channel
from edgekit_runtime.telemetry.window import Window

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from edgekit_runtime.model import LoadOptions, Model
    from edgekit_runtime.server.app import App
    from edgekit_runtime.server.worker_spec import WorkerSpec

logger = logging.getLogger("edgekit_runtime.server")

#: seconds between a worker's telemetry batches to the serving process
FORWARD_EVERY = 0.05


class Forwarder:
    """The worker's telemetry: requests are kept as the device's window would keep them, and sent in batches.

    Sampling is the window's own (:meth:`Window.record`, at this worker's share of ``sample_rate``), so what
    crosses to the serving process is what its window would have kept; a batch goes every
    :data:`FORWARD_EVERY` seconds, and the last one when the server stops.
    """

    def __init__(self, channel: Channel, sample_rate: float) -> None:
        """Send to ``channel``."""
        self._channel = channel
        self._lock = threading.Lock()
        self._window = Window(time.time(), {}, sample_rate=sample_rate)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(
        self,
        seconds: float,
        *,
        inputs: Mapping[str, np.ndarray] | None = None,
        first_output: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """One inference request, kept for the next batch."""
        with self._lock:
            self._window.record(seconds, inputs=inputs, first_output=first_output, error=error)

    def status(self) -> dict[str, float]:
        """Nothing of its own: the serving process's ``/metrics`` says how telemetry is doing."""
        return {}

    def start(self) -> None:
        """Send batches on a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="edgekit-telemetry-forward", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._send()

    def _run(self) -> None:
        while not self._stop.wait(FORWARD_EVERY):
            self._send()

    def _send(self) -> None:
        with self._lock:
            taken = self._window.take()
        if taken:
            try:
                self._channel.send("records", taken)
            except WorkerError:
                logger.warning("telemetry of %d request(s) lost: the serving process is gone", len(taken))


class Steered:
    """The worker's side of the channel's requests: its metrics, its health counts, and model swaps."""

    def __init__(self, channel: Channel, spec: WorkerSpec, deploys: LoadOptions) -> None:
        """Answer on ``channel``; deployed bundles load with ``deploys`` (a signature required)."""
        self.channel = channel
        self.spec = spec
        self.deploys = deploys
        self.app: App | None = None
        #: the models this worker holds, by bundle: the one serving, and the one before (a rollback's)
        self.held: dict[Path, Model] = {}
        channel.on_request.update(snapshot=self.snapshot, counts=self.counts, swap=self.swap)

    def attach(self, app: App, model: Model) -> None:
        """The app exists: answer for it, and ask for ``/metrics`` of all the workers."""
        self.app = app
        self.held = {self.spec.model_path: model}
        app.metrics_text = self.scrape

    def _app(self) -> App:
        if self.app is None:
            raise WorkerError("this worker is not serving yet")
        return self.app

    def snapshot(self, _: object) -> dict[str, Any]:
        """The worker's metrics (:meth:`ServerMetrics.snapshot`)."""
        app = self._app()
        return app.from_thread(app.metrics.snapshot)

    def counts(self, _: object) -> tuple[int, int, float, int]:
        """The serving model's requests, 5xx, seconds and 4xx since it was switched in (a deploy's health)."""
        app = self._app()
        return app.from_thread(app.health)

    def swap(self, path: Path) -> str:
        """Serve the bundle at ``path`` (one held, or loaded, verified and self-tested now); its sha256."""
        from edgekit_runtime.model import load

        app = self._app()
        model = self.held.get(path) or load(path, self.deploys)
        before = [(p, m) for p, m in self.held.items() if m is app.model and p != path]
        app.swap_from_thread(model)
        self.held = {path: model, **dict(before)}
        return model.sha256

    def scrape(self) -> bytes:
        """``/metrics`` of every worker, from the serving process; this worker's own if it does not answer."""
        try:
            return bytes(self.channel.request("scrape", timeout=10.0))
        except WorkerError as exc:
            logger.warning("/metrics: the serving process did not answer (%s): this worker's numbers alone", exc)
            return self._app().metrics.render()


def main(argv: list[str]) -> int:
    """Run the worker on the channel whose descriptor is ``argv[1]``; the exit code."""
    from multiprocessing.connection import Connection

    conn = Connection(int(argv[1]))
    _, _, spec = conn.recv()
    done = threading.Event()

    def orphaned() -> None:  # the serving process is gone: stop as on SIGTERM, unless stopping already
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    channel = Channel(conn, on_end=orphaned, name="edgekit-worker-channel")
    try:
        run(spec, channel)
    except EdgekitError as exc:
        with contextlib.suppress(WorkerError):
            channel.send("refused", str(exc))
        return 1
    finally:
        done.set()
        channel.close()
    return 0


def run(spec: WorkerSpec, channel: Channel) -> None:
    """Load, listen and serve as the ``serve`` command does, telling the serving process through ``channel``."""
    from edgekit_runtime.model import load
    from edgekit_runtime.server.serve import listen, serve

    server = spec.server
    sock = listen(server.host, server.port, reuse_port=True)
    try:
        model = load(spec.model_path, spec.load_options())
        server.check_model(model)
        steered = Steered(channel, spec, spec.load_options(deploy=True))
    except BaseException:
        sock.close()
        raise
    telemetry = None if spec.sample_rate is None else Forwarder(channel, spec.sample_rate)
    channel.start()
    serve(
        model,
        server,
        sock=sock,
        on_ready=lambda _: _tell(channel, "ready", os.getpid()),
        telemetry=telemetry,
        on_app=lambda app: steered.attach(app, model),
    )


def _tell(channel: Channel, kind: str, payload: object) -> None:
    with contextlib.suppress(WorkerError):  # the serving process is gone: the channel's end stops this one
        channel.send(kind, payload)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
