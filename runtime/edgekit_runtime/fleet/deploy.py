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
commits: there was no traffic to judge by, and the self-test passed. A rise in the share of 4xx answers (requests
the new model refuses that the old one took) past ``max_client_error_rise`` rolls back as well.

Before anything switches, a verified candidate is judged against the model serving now (:func:`judge_candidate`):
an older version, or the same version with other contents, is refused unless the signed command says
``allow_downgrade`` (TUF's *rollback attack*); inputs that differ from the serving model's (names, types, shapes:
every client would get 400) are refused unless it says ``allow_schema_change``.

A deploy's bytes come from the chunks of an ``mqtt:SHA256`` source or an http(s) URL (:func:`fetch_http`), never
from a path on the device: a path in a command from the network could read any file. The fetch stops at the
command's signed ``size`` (TUF's *endless data*), within a deadline that allows a slow link but not a stalled one
(*slow retrieval*), after checking there is room on the disk.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from edgekit_runtime.errors import BundleError, CommandError, ConfigError, RuntimeKitError
from edgekit_runtime.fleet.models import SHA256, SUFFIX
from edgekit_runtime.fleet.versions import compare_versions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path
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
    #: 4xx answers among ``requests``: inputs the model refused
    client_errors: int = 0

    def __sub__(self, other: Health) -> Health:
        """What happened between ``other`` and this."""
        return Health(
            self.requests - other.requests,
            self.errors - other.errors,
            self.seconds - other.seconds,
            self.client_errors - other.client_errors,
        )

    @property
    def client_error_rate(self) -> float:
        """4xx answers per request (0 without requests)."""
        return self.client_errors / self.requests if self.requests else 0.0

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
    #: rise in the share of 4xx answers, against the old model's, above which it is rolled back
    max_client_error_rise: float = 0.25

    def __post_init__(self) -> None:
        """Refuse policies that cannot work."""
        if (
            self.window < 0
            or not 0 <= self.max_error_rate <= 1
            or self.max_latency_ratio <= 0
            or not 0 <= self.max_client_error_rise <= 1
        ):
            raise ConfigError(
                "health policy: window >= 0, max_error_rate in [0, 1], max_latency_ratio > 0, "
                "max_client_error_rise in [0, 1]"
            )

    def verdict(self, before: Health, after: Health) -> str | None:
        """Why ``after`` (the new model's window) is unhealthy, or ``None``."""
        if after.requests < self.min_requests:
            return None
        if after.error_rate > self.max_error_rate:
            return f"error rate {after.error_rate:.1%} over {after.requests} requests > {self.max_error_rate:.1%}"
        old_refusals = before.client_error_rate if before.requests >= self.min_requests else 0.0
        if after.client_error_rate - old_refusals > self.max_client_error_rise:
            return (
                f"4xx answers {after.client_error_rate:.1%} over {after.requests} requests, against "
                f"{old_refusals:.1%} before: a rise over {self.max_client_error_rise:.0%}"
            )
        if before.requests >= self.min_requests and after.mean_seconds > before.mean_seconds * self.max_latency_ratio:
            ratio = after.mean_seconds / before.mean_seconds
            return f"mean latency {ratio:.1f}x the previous model's > {self.max_latency_ratio:g}x"
        return None


#: longest ``source`` a command may carry
MAX_SOURCE = 2048
#: a deploy's bundle limit when the device names none (``--max-bundle-mb``)
DEFAULT_MAX_BUNDLE = 1 << 30
#: disk left free after a bundle is fetched: the outbox, logs and the system need room too
DISK_RESERVE = 32 << 20
_URL = re.compile(r"^https?://\S+$")
#: the version of a model that is not a bundle (a plain .onnx): anything may replace it
UNVERSIONED = "unversioned"


@dataclass(frozen=True)
class DeployCommand:
    """What to deploy: ``source`` (``mqtt:SHA256`` or an http(s) URL), the bundle file's ``sha256`` and ``size``.

    ``allow_downgrade`` and ``allow_schema_change`` are the signed command's explicit consent to an older version
    and to other inputs (:func:`judge_candidate`).
    """

    id: str
    source: str
    sha256: str | None = None
    #: bytes of the bundle file: the fetch stops past it
    size: int | None = None
    allow_downgrade: bool = False
    allow_schema_change: bool = False

    @classmethod
    def from_doc(
        cls, command_id: str, doc: Mapping[str, object], *, max_bytes: int = DEFAULT_MAX_BUNDLE
    ) -> DeployCommand:
        """A deploy command's fields, checked; :class:`CommandError` naming what is wrong."""
        source, sha256, size = doc.get("source"), doc.get("sha256"), doc.get("size")
        flags = {name: doc.get(name, False) for name in ("allow_downgrade", "allow_schema_change")}

        def refuse(why: str) -> CommandError:
            return CommandError(why, command_id=command_id)

        if not isinstance(source, str) or not 1 <= len(source) <= MAX_SOURCE:
            raise refuse(f"a deploy needs 'source', mqtt:SHA256 or an http(s) URL of at most {MAX_SOURCE} characters")
        if not (source.startswith("mqtt:") or _URL.match(source)):
            raise refuse(
                f"a deploy's source is mqtt:SHA256 or an http(s) URL, not {source[:80]!r}: a path on the device is "
                "never taken from the network"
            )
        if not isinstance(sha256, str) or not SHA256.match(sha256):
            raise refuse("a deploy needs 'sha256', the bundle file's (64 lowercase hex digits)")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise refuse("a deploy needs 'size', the bundle file's bytes (a whole number > 0)")
        if size > max_bytes:
            raise refuse(
                f"the bundle is {size} bytes, over this device's {max_bytes}-byte limit: raise --max-bundle-mb on "
                "the device, or deploy a smaller bundle"
            )
        if not all(isinstance(value, bool) for value in flags.values()):
            raise refuse("allow_downgrade and allow_schema_change are true or false")
        return cls(command_id, source, sha256, size, bool(flags["allow_downgrade"]), bool(flags["allow_schema_change"]))


def judge_candidate(serving: Model, candidate: Model, command: DeployCommand) -> str | None:
    """Why ``candidate`` may not replace ``serving`` under ``command``, or ``None``."""
    if not command.allow_downgrade and serving.version != UNVERSIONED:
        order = compare_versions(candidate.version, serving.version)
        if order is None:
            return (
                f"version {candidate.version!r} cannot be compared with {serving.version!r} serving now: give bundles "
                "versions such as 1.2.0, or deploy with --allow-downgrade to replace it anyway"
            )
        if order < 0:
            return (
                f"{candidate.name} {candidate.version} is older than {serving.name} {serving.version} serving now: "
                "refusing a downgrade; deploy with --allow-downgrade if that is meant"
            )
        if order == 0 and candidate.sha256 != serving.sha256:
            return (
                f"{candidate.name} {candidate.version} is the version serving now, with another model: give the new "
                "bundle a higher version, or deploy with --allow-downgrade to replace it anyway"
            )
    if not command.allow_schema_change and _signature(serving) != _signature(candidate):
        return (
            f"the bundle's inputs ({_signature_text(candidate)}) differ from the serving model's "
            f"({_signature_text(serving)}): its clients would get 400; deploy with --allow-schema-change if they are "
            "ready for it"
        )
    return None


def _signature(model: Model) -> list[tuple[str, str, tuple[object, ...] | None]]:
    return [(spec.name, spec.dtype, spec.shape) for spec in model.inputs]


def _signature_text(model: Model) -> str:
    return ", ".join(f"{spec.name} {spec.shape_text()} {spec.dtype}" for spec in model.inputs)[:300]


def fetch_source(command: DeployCommand, _note: Callable[[str], None]) -> Iterable[bytes]:
    """:data:`Fetch` for http(s) URLs (``mqtt:`` sources need the agent's chunk fetcher)."""
    if not _URL.match(command.source):
        raise BundleError(
            f"a deploy's source is mqtt:SHA256 or an http(s) URL, not {command.source[:80]!r}: a path on the device "
            "is never taken from the network"
        )
    return fetch_http(command.source, max_bytes=command.size or DEFAULT_MAX_BUNDLE)


def fetch_http(source: str, *, max_bytes: int, timeout: float = 60.0, min_rate: float = 16 << 10) -> Iterator[bytes]:
    """The bundle's bytes from an http(s) URL, in chunks, and not for ever.

    A server that announces more than ``max_bytes`` is refused before its body is read; one that sends more
    without saying so is stopped by :func:`capped`, which the deployer puts around every source. ``timeout``:
    seconds any one read may wait; the whole fetch may take ``timeout`` plus ``max_bytes / min_rate`` seconds
    (16 KiB/s on average at least), so a server that drips bytes cannot hold the deploy (and the agent, which runs
    one command at a time) for ever.
    """
    deadline = time.monotonic() + timeout + max_bytes / min_rate
    seen = 0
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response:  # noqa: S310  (scheme checked)
            declared = str(response.headers.get("Content-Length") or "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise BundleError(
                    f"{source} is {declared} bytes, more than the {max_bytes} the command signed: refused"
                )
            while chunk := response.read(1 << 20):
                seen += len(chunk)
                if time.monotonic() > deadline:
                    raise BundleError(f"{source} is too slow ({seen} of {max_bytes} bytes in time): deploy again")
                yield chunk
    except OSError as exc:
        raise BundleError(f"cannot fetch {source} ({exc}): check the URL and the device's network") from None


def capped(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """``chunks``, refused once they pass ``max_bytes`` in all (whatever their source)."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > max_bytes:
            raise BundleError(f"the bundle is more than the {max_bytes} bytes the command signed: refused")
        yield chunk


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
        max_bundle_bytes: int = DEFAULT_MAX_BUNDLE,
    ) -> None:
        """Deploy beside ``serving``, the model served now.

        ``open_model`` verifies, loads and self-tests a bundle; ``fetch``: where bundles come from (by default
        :func:`fetch_source`: http(s) URLs); ``max_bundle_bytes``: the largest bundle this device takes.
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
        self.max_bundle_bytes = max_bundle_bytes

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
        limit = min(command.size or self.max_bundle_bytes, self.max_bundle_bytes)
        try:
            self._step(command, Phase.FETCHING)
            self._room(limit)
            note = lambda detail: self.emit(command.id, Phase.FETCHING, detail)  # noqa: E731
            sha, path = self.store.put(capped(self.fetch(command, note), limit), command.sha256)
        except RuntimeKitError as exc:  # unreachable, or damaged on the way: it may work when sent again
            self._step(command, Phase.FAILED, str(exc), candidate=None)
            return Phase.FAILED
        try:
            self._step(command, Phase.VERIFYING, sha, candidate=sha)
            candidate = self.open_model(path)  # hashes, signature against the trusted keys, load, golden self-test
            refusal = judge_candidate(self.serving, candidate, command)
            if refusal is not None:
                raise BundleError(refusal)
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

    def _room(self, size: int) -> None:
        """A :class:`BundleError` unless the state directory has room for ``size`` bytes and the reserve."""
        free = shutil.disk_usage(self.store.root).free
        if free < size + DISK_RESERVE:
            raise BundleError(
                f"not enough disk for the bundle: {size / 1e6:.1f} MB and {DISK_RESERVE >> 20} MiB to spare needed, "
                f"{free / 1e6:.1f} MB free in the state directory; free some space and deploy again"
            )

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
    in, and that deploy's command id. What interrupted writes and fetches left is deleted (:meth:`ModelStore.clean`),
    but the chunks of the bundle the last deploy fetched over MQTT, so that sending it again resumes.
    """
    state = store.state()
    current = state.get("current")
    path = store.path(current) if current and store.has(current) else None
    deploy = state.get("deploy") or {}
    source = str(deploy.get("source") or "")
    store.clean(keep_partial=source.removeprefix("mqtt:") if source.startswith("mqtt:") else None)
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
