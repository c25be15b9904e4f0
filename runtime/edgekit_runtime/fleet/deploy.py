"""The deploy state machine: fetch, verify and self-test, switch, watch, then commit or roll back.

Each step is written to the model store's record *before* it is taken, so a restart finds where a deploy
stopped and ends it in a known good state (:meth:`Deployer.recover`):

==============================  ===============================================================
stopped in                      on restart
==============================  ===============================================================
fetching, verifying, testing    the candidate never served: ``failed``; the current model serves
switching, watching             the candidate was never committed: ``rolled_back``; the current
                                model (the one before the deploy) serves
committed, rolled_back, ...     nothing to do
==============================  ===============================================================

The health watch compares the new model's window with the thresholds of :class:`HealthPolicy`: the error
rate (5xx among inference requests), and the mean latency against the old model's over the time the deploy
took before the switch (when that saw enough requests to judge). A window with fewer than ``min_requests``
commits: there was no traffic to judge by, and the self-test passed.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgekit_runtime.errors import BundleError, ConfigError, RuntimeKitError
from edgekit_runtime.fleet.models import SUFFIX

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import TypeAlias

    from edgekit_runtime.fleet.models import ModelStore
    from edgekit_runtime.model import Model

    #: where a deploy's bytes come from: the command, and a way to report progress (more ``fetching`` events)
    Fetch: TypeAlias = Callable[["DeployCommand", Callable[[str], None]], Iterable[bytes]]


class Phase(str, Enum):
    """Where a deploy is; the ``status`` of its events."""

    RECEIVED = "received"
    FETCHING = "fetching"
    VERIFYING = "verifying"
    TESTING = "testing"
    SWITCHING = "switching"
    WATCHING = "watching"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    REFUSED = "refused"


UNFINISHED_BEFORE_SWITCH = {Phase.FETCHING, Phase.VERIFYING, Phase.TESTING}
UNFINISHED_AFTER_SWITCH = {Phase.SWITCHING, Phase.WATCHING}


@dataclass(frozen=True)
class Health:
    """Inference counters at one moment (they only grow)."""

    requests: int
    errors: int
    seconds: float

    def __sub__(self, other: Health) -> Health:
        """What happened between ``other`` and this."""
        return Health(self.requests - other.requests, self.errors - other.errors, self.seconds - other.seconds)

    @property
    def error_rate(self) -> float:
        """Errors per request (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_seconds(self) -> float:
        """Mean latency (0 without requests)."""
        return self.seconds / self.requests if self.requests else 0.0


class HealthProbe(Protocol):
    """Where the counters come from (the server's)."""

    def snapshot(self) -> Health:
        """The counters now."""


@dataclass(frozen=True)
class HealthPolicy:
    """When a new model is judged unhealthy, and for how long it is watched."""

    #: seconds the new model is watched before it is committed
    window: float = 30.0
    #: error rate above which it is rolled back
    max_error_rate: float = 0.05
    #: mean latency above this multiple of the old model's rolls it back
    max_latency_ratio: float = 2.0
    #: requests a window needs for its numbers to count
    min_requests: int = 20

    def __post_init__(self) -> None:
        """Refuse policies that cannot work."""
        if self.window < 0 or not 0 <= self.max_error_rate <= 1 or self.max_latency_ratio <= 0:
            raise ConfigError("health policy: window >= 0, max_error_rate in [0, 1], max_latency_ratio > 0")

    def verdict(self, before: Health, after: Health) -> str | None:
        """Why ``after`` (the new model's window) is unhealthy, or ``None``."""
        if after.requests < self.min_requests:
            return None
        if after.error_rate > self.max_error_rate:
            return f"error rate {after.error_rate:.1%} over {after.requests} requests > {self.max_error_rate:.1%}"
        if before.requests >= self.min_requests and after.mean_seconds > before.mean_seconds * self.max_latency_ratio:
            ratio = after.mean_seconds / before.mean_seconds
            return f"mean latency {ratio:.1f}x the previous model's > {self.max_latency_ratio:g}x"
        return None


@dataclass(frozen=True)
class DeployCommand:
    """What to deploy: ``source`` is an http(s) URL or a local path; ``sha256`` of the bundle file if known."""

    id: str
    source: str
    sha256: str | None = None


def fetch_source(command: DeployCommand, _note: Callable[[str], None]) -> Iterable[bytes]:
    """:data:`Fetch` for http(s) URLs and paths (``mqtt:`` sources need the agent's chunk fetcher)."""
    return fetch(command.source)


def fetch(source: str, timeout: float = 60.0) -> Iterator[bytes]:
    """The bundle's bytes, in chunks, from an http(s) URL or a local path."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response:  # noqa: S310  (scheme checked)
                yield from iter(lambda: response.read(1 << 20), b"")
        except OSError as exc:
            raise BundleError(f"cannot fetch {source} ({exc}): check the URL and the device's network") from None
        return
    path = Path(source)
    if not path.is_file():
        raise BundleError(f"no bundle at {source}: give an http(s) URL or a path on the device")
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


class Deployer:
    """Runs deploys one at a time, writing each step down before it is taken."""

    def __init__(
        self,
        store: ModelStore,
        serving: Model,
        *,
        open_model: Callable[[Path], Model],
        swap: Callable[[Model], None],
        probe: HealthProbe,
        emit: Callable[[str, Phase, str], None],
        policy: HealthPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        fetch: Fetch | None = None,
    ) -> None:
        """Deploy beside ``serving``, the model served now.

        ``open_model`` verifies, loads and self-tests a bundle; ``fetch``: where bundles come from (by default
        :func:`fetch_source`: URLs and paths).
        """
        self.store = store
        self.serving = serving
        self.open_model = open_model
        self.swap = swap
        self.probe = probe
        self.emit = emit
        self.policy = policy or HealthPolicy()
        self.sleep = sleep
        self.fetch = fetch or fetch_source

    def _step(self, command: DeployCommand, phase: Phase, detail: str = "", **record: str | None) -> None:
        state = self.store.state()
        state.update(record)
        state["deploy"] = {"id": command.id, "phase": phase.value, "detail": detail, "source": command.source}
        self.store.save(state)
        self.emit(command.id, phase, detail)

    def deploy(self, command: DeployCommand) -> Phase:
        """Take ``command`` to its end: ``committed``, ``rolled_back``, ``refused`` or ``failed``."""
        self.emit(command.id, Phase.RECEIVED, command.source)
        before_start = self.probe.snapshot()
        try:
            self._step(command, Phase.FETCHING)
            note = lambda detail: self.emit(command.id, Phase.FETCHING, detail)  # noqa: E731
            sha, path = self.store.put(self.fetch(command, note), command.sha256)
        except RuntimeKitError as exc:  # unreachable, or damaged on the way: it may work when sent again
            self._step(command, Phase.FAILED, str(exc), candidate=None)
            return Phase.FAILED
        try:
            self._step(command, Phase.VERIFYING, sha, candidate=sha)
            candidate = self.open_model(path)  # hashes, signature against the trusted keys, load, golden self-test
        except RuntimeKitError as exc:  # this bundle will never do on this device
            self._step(command, Phase.REFUSED, str(exc), candidate=None)
            self._prune()
            return Phase.REFUSED
        self._step(command, Phase.TESTING, "self-test passed")
        old = self.serving
        before = self.probe.snapshot() - before_start
        self._step(command, Phase.SWITCHING, sha)
        try:
            self.swap(candidate)
        except RuntimeKitError as exc:
            self._step(command, Phase.REFUSED, str(exc), candidate=None)
            return Phase.REFUSED
        self.serving = candidate
        self._step(command, Phase.WATCHING, f"{self.policy.window:g} s")
        at_switch = self.probe.snapshot()
        self.sleep(self.policy.window)
        reason = self.policy.verdict(before, self.probe.snapshot() - at_switch)
        if reason is not None:
            self.swap(old)
            self.serving = old
            self._step(command, Phase.ROLLED_BACK, reason, candidate=None)
            return Phase.ROLLED_BACK
        previous = self.store.state().get("current") or self._kept(old)
        self._step(command, Phase.COMMITTED, sha, previous=previous, current=sha, candidate=None)
        self.store.prune([sha, previous])
        return Phase.COMMITTED

    def _kept(self, model: Model) -> str | None:
        """Keep ``model``'s bundle in the store; its hash (``None`` when it is not a bundle file).

        A device's first deploy replaces the command line's MODEL, which is not in the store: this keeps it, as
        ``previous``, so there is something to roll back to. A plain ``.onnx`` MODEL is not a bundle: not kept.
        """
        path = model.path
        if path is None or path.suffix != SUFFIX or not path.is_file():
            return None
        try:
            return self.store.put_file(path)[0]
        except (OSError, RuntimeKitError):
            return None  # the deploy stands; only a later rollback has nothing to go back to

    def _prune(self) -> None:
        state = self.store.state()
        self.store.prune([state.get("current"), state.get("previous")])

    def recover(self) -> tuple[Path | None, Phase | None]:
        """After a restart: end an unfinished deploy (see :func:`recover`), telling ``emit``."""
        path, ended, command_id = recover(self.store)
        if ended is not None and command_id is not None:
            self.emit(command_id, ended, "the device restarted during the deploy")
        return path, ended

    def rollback(self, command_id: str) -> Phase:
        """Serve the previous committed model again (an operator's rollback)."""
        self.emit(command_id, Phase.RECEIVED, "rollback")
        state = self.store.state()
        previous = state.get("previous")
        if not previous or not self.store.has(previous):
            self.emit(command_id, Phase.REFUSED, "no previous model is kept on this device")
            return Phase.REFUSED
        try:
            model = self.open_model(self.store.path(previous))
            self.swap(model)
        except RuntimeKitError as exc:
            self.emit(command_id, Phase.FAILED, str(exc))
            return Phase.FAILED
        self.serving = model
        command = DeployCommand(command_id, "rollback")
        self._step(command, Phase.ROLLED_BACK, previous, current=previous, previous=state.get("current"))
        return Phase.ROLLED_BACK


def recover(store: ModelStore) -> tuple[Path | None, Phase | None, str | None]:
    """After a restart: end an unfinished deploy in a known good state.

    Returns the bundle to serve (``None``: the command's MODEL), the phase an unfinished deploy was ended
    in, and that deploy's command id.
    """
    state = store.state()
    current = state.get("current")
    path = store.path(current) if current and store.has(current) else None
    deploy = state.get("deploy") or {}
    try:
        phase = Phase(deploy.get("phase"))
    except ValueError:
        return path, None, None
    if phase not in UNFINISHED_BEFORE_SWITCH | UNFINISHED_AFTER_SWITCH:
        return path, None, None
    ended = Phase.FAILED if phase in UNFINISHED_BEFORE_SWITCH else Phase.ROLLED_BACK
    state["candidate"] = None
    state["deploy"] = {**deploy, "phase": ended.value, "detail": f"the device restarted while {phase.value}"}
    store.save(state)
    return path, ended, str(deploy.get("id"))
