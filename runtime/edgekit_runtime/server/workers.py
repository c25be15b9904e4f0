"""``serve --workers N``: the serving process is worker 0, and starts and steers N - 1 worker processes.

Every worker listens on the same port with ``SO_REUSEPORT``, so the kernel spreads new connections over
them by a hash of each connection's addresses (``edgekit_worker_requests_total`` in ``/metrics`` shows the
spread). Each loads and self-tests the bundle itself and runs its own engine session: a worker's memory is
its own, and one that crashes takes nobody else's requests with it. The serving process alone keeps the
device's state: its one telemetry window and outbox (the workers send their requests to it,
:class:`~edgekit_runtime.server.worker.Forwarder`), the fleet agent, and the deploy store.

- ``/metrics``, from any worker, adds up every worker's numbers (:meth:`WorkerPool.metrics_text`).
- A deploy swaps the model in every worker before the serving process's own (:meth:`WorkerPool.swap`); one
  that cannot swap sends those that did back to the model before, and the deploy is refused.
- The deploy's health watch counts every worker's requests (:class:`Workers`).
- A graceful stop (SIGTERM, Ctrl-C) stops every worker: each finishes its requests in flight and sends its
  last telemetry before the serving process writes the last window (:meth:`WorkerPool.stop`, :meth:`join`).
- A worker that ends on its own (killed, out of memory) is started again, a second later.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from edgekit_runtime.errors import WorkerError
from edgekit_runtime.server.ipc import Channel
from edgekit_runtime.server.metrics import render_merged, telemetry_metrics

if TYPE_CHECKING:
    from edgekit_runtime.model import Model
    from edgekit_runtime.server.app import App
    from edgekit_runtime.server.worker_spec import WorkerSpec
    from edgekit_runtime.telemetry.service import Telemetry

logger = logging.getLogger("edgekit_runtime.server")

#: seconds a worker may take to load, self-test and start listening
START_TIMEOUT = 120.0
#: seconds a worker may take to load and self-test a deployed bundle
SWAP_TIMEOUT = 300.0
#: a worker that ended this soon after it started, this many times in a row, is not started again
QUICK_END, QUICK_ENDS = 10.0, 3


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes]
    channel: Channel
    started: float = field(default_factory=time.monotonic)
    #: set once it serves, or could not start (then ``refused`` says why)
    ready: threading.Event = field(default_factory=threading.Event)
    serving: bool = False
    refused: str | None = None


class WorkerPool:
    """The worker processes beside the serving process (worker 0)."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        """``count`` workers in all, the serving process included; each started with ``spec`` (and its index)."""
        self.spec = spec
        self.count = count
        self.model_path = spec.model_path
        self.telemetry: Telemetry | None = None
        self.app: App | None = None
        self._children: dict[int, _Child] = {}
        self._stopping = threading.Event()
        self._quick_ends: dict[int, int] = {}
        #: requests the workers recorded before telemetry was made (they may serve before this process does)
        self._early: list[Any] | None = []
        self._early_lock = threading.Lock()

    @property
    def children(self) -> list[_Child]:
        """The workers started, by index."""
        return [self._children[i] for i in sorted(self._children)]

    def start(self) -> None:
        """Start workers 1 to ``count - 1`` (they load in parallel with the serving process)."""
        for index in range(1, self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(  # noqa: S603  (this Python, this package's module)
                [sys.executable, "-m", "edgekit_runtime.server.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        except OSError as exc:
            ours.close()
            raise WorkerError(f"cannot start worker {index} ({exc.strerror or exc}): serve with --workers 1") from None
        finally:
            theirs.close()
        box: list[_Child] = []  # the child, once made: its channel's handlers name it
        channel = Channel(
            Connection(ours.detach()),
            on_message={
                "ready": lambda _: self._serving(box[0]),
                "refused": lambda reason: self._refused(box[0], str(reason)),
                "records": self._records,
            },
            on_request={"scrape": lambda _: self.metrics_text()},
            on_end=lambda: self._ended(box[0]),
            name=f"edgekit-worker-{index}",
        )
        child = _Child(index, proc, channel)
        box.append(child)
        channel.send("spec", dataclasses.replace(self.spec, model_path=self.model_path, index=index))
        channel.start()
        self._children[index] = child

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every worker serves; a :class:`WorkerError` with the reason of one that could not."""
        deadline = time.monotonic() + timeout
        for child in self.children:
            if not child.ready.wait(max(0.0, deadline - time.monotonic())):
                raise WorkerError(f"worker {child.index} did not start within {timeout:g} s: serve with --workers 1")
            if child.refused is not None:
                raise WorkerError(f"worker {child.index} could not start: {child.refused}")

    def _serving(self, child: _Child) -> None:
        child.serving = True
        child.ready.set()

    def _refused(self, child: _Child, reason: str) -> None:
        child.refused = reason
        child.ready.set()

    def attach_telemetry(self, telemetry: Telemetry | None) -> None:
        """The device's telemetry, made once the serving process loaded the model: the workers' requests go to it."""
        with self._early_lock:
            self.telemetry, early, self._early = telemetry, self._early or [], None
        if telemetry is not None and early:
            telemetry.record_taken(early)

    def _records(self, taken: list[Any]) -> None:
        with self._early_lock:
            if self._early is not None:
                self._early += taken
                return
        if self.telemetry is not None:
            self.telemetry.record_taken(taken)

    def _ended(self, child: _Child) -> None:
        """A worker's channel ended: expected while stopping; otherwise it is started again, a second later.

        One that ends before it serves could not start: that is its refusal (a crash while loading, say).
        """
        child.channel.close()
        if self._stopping.is_set() or child.refused is not None:
            child.ready.set()
            return
        code = child.proc.wait()
        if not child.serving:
            self._refused(child, f"it ended (exit code {code}) before it served; its log says why")
            return
        quick = time.monotonic() - child.started < QUICK_END
        self._quick_ends[child.index] = self._quick_ends.get(child.index, 0) + 1 if quick else 0
        if self._quick_ends[child.index] >= QUICK_ENDS:
            logger.error("worker %d ended %d times within %g s of starting: not starting it again", child.index,
                         QUICK_ENDS, QUICK_END)  # fmt: skip
            return
        logger.warning("worker %d (pid %d) ended (exit code %s): starting it again", child.index, child.proc.pid, code)
        if not self._stopping.wait(1.0):
            try:
                self._spawn(child.index)
            except WorkerError as exc:
                logger.error("%s", exc)  # noqa: TRY400  (a one-line reason, no traceback)

    def _app(self) -> App:
        if self.app is None:
            raise WorkerError("the server is not running yet")
        return self.app

    def _live(self) -> list[_Child]:
        return [c for c in self.children if c.ready.is_set() and c.refused is None and not c.channel.closed.is_set()]

    @staticmethod
    def _gather(
        children: list[_Child], kind: str, payload: object, timeout: float
    ) -> tuple[list[tuple[_Child, Any]], list[tuple[_Child, BaseException]]]:
        """Ask ``children`` at once: the answers, and the failures."""
        if not children:
            return [], []
        with ThreadPoolExecutor(len(children)) as pool:
            futures = [(c, pool.submit(c.channel.request, kind, payload, timeout)) for c in children]
        answers = [(c, f.result()) for c, f in futures if f.exception() is None]
        failures = [(c, exc) for c, f in futures if (exc := f.exception()) is not None]
        return answers, failures

    def _ask(self, kind: str) -> list[Any]:
        """Ask every worker serving now; the answers of those that gave one (the others are logged)."""
        answers, failures = self._gather(self._live(), kind, None, 10.0)
        for child, exc in failures:
            logger.warning("worker %d: %s: %s", child.index, kind, exc)
        return [answer for _, answer in answers]

    def metrics_text(self) -> bytes:
        """``/metrics`` of all the workers, added up, and the device's telemetry numbers."""
        app = self._app()
        snapshots = [app.from_thread(app.metrics.snapshot)]
        snapshots += self._ask("snapshot")
        body = render_merged(snapshots)
        body += (
            "# HELP edgekit_workers Worker processes serving.\n# TYPE edgekit_workers gauge\n"
            f"edgekit_workers {len(snapshots)}\n"
        ).encode()
        if self.telemetry is not None:
            body += telemetry_metrics(self.telemetry.status())
        return body

    def counts(self) -> tuple[int, int, float, int]:
        """Every worker's requests, 5xx, seconds and 4xx on the model serving now (a deploy's health)."""
        app = self._app()
        own = app.from_thread(app.health)
        totals = [own, *self._ask("counts")]
        return (
            sum(int(t[0]) for t in totals),
            sum(int(t[1]) for t in totals),
            sum(float(t[2]) for t in totals),
            sum(int(t[3]) for t in totals),
        )

    def swap(self, model: Model) -> None:
        """Have every worker serve ``model``'s bundle; if one cannot, those that did go back, and it is refused."""
        path = model.path
        if path is None:
            raise WorkerError("the model has no bundle file to send to the workers: serve with --workers 1")
        children = [c for c in self.children if not c.channel.closed.is_set()]
        done, failures = self._gather(children, "swap", path, SWAP_TIMEOUT)
        if failures:
            _, back = self._gather([c for c, _ in done], "swap", self.model_path, SWAP_TIMEOUT)
            for child, exc in back:
                logger.error("worker %d could not go back to %s: %s", child.index, self.model_path, exc)
            failed = "; ".join(f"worker {child.index}: {exc}" for child, exc in failures)
            raise WorkerError(f"the workers could not all switch to {path.name}: {failed}")
        self.model_path = path

    def stop(self) -> None:
        """Ask every worker to stop gracefully (SIGTERM): it finishes its requests and sends its last telemetry."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)

    def join(self, timeout: float) -> None:
        """Wait for the workers to end, and for what they sent last; those still running then are killed."""
        self.stop()
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop within %g s: killed", child.index, timeout)
                child.proc.kill()
                child.proc.wait()
            child.channel.closed.wait(max(0.0, deadline - time.monotonic()))
            child.channel.close()


class Workers:
    """The serving process's app and its workers, as the fleet agent sees one server."""

    def __init__(self, app: App, pool: WorkerPool) -> None:
        """Steer ``app`` and ``pool`` together."""
        self.app = app
        self.pool = pool

    @property
    def model(self) -> Model:
        """The model new requests go to."""
        return self.app.model

    def health(self) -> tuple[int, int, float, int]:
        """Every worker's requests, 5xx, seconds and 4xx on the model serving now."""
        return self.pool.counts()

    def swap_from_thread(self, model: Model) -> None:
        """Every worker serves ``model`` from its next request on, the serving process last."""
        self.app.settings.check_model(model)  # before any worker swaps
        self.pool.swap(model)
        self.app.swap_from_thread(model)
