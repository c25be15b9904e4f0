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

The new model's health is watched (:mod:`.deploy_health`) after a candidate was judged against the model
serving now (:func:`~edgekit_runtime.fleet.deploy_command.judge_candidate`); its bytes were fetched
(:mod:`.deploy_fetch`) after checking there is room on the disk.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

from edgekit_runtime.contract.statuses import Phase
from edgekit_runtime.errors import BundleError, EdgekitError
from edgekit_runtime.fleet.deploy_command import DEFAULT_MAX_BUNDLE, DeployCommand, judge_candidate
from edgekit_runtime.fleet.deploy_fetch import capped, fetch_source
from edgekit_runtime.fleet.deploy_health import HealthPolicy
from edgekit_runtime.fleet.models import SUFFIX

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from edgekit_runtime.fleet.deploy_fetch import Fetch
    from edgekit_runtime.fleet.deploy_health import HealthProbe
    from edgekit_runtime.fleet.models import ModelStore
    from edgekit_runtime.model import Model


UNFINISHED_BEFORE_SWITCH = {Phase.FETCHING, Phase.VERIFYING, Phase.TESTING}
UNFINISHED_AFTER_SWITCH = {Phase.SWITCHING, Phase.WATCHING}
#: disk left free after a bundle is fetched: the outbox, logs and the system need room too
DISK_RESERVE = 32 << 20


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
        except EdgekitError as exc:  # unreachable, or damaged on the way: it may work when sent again
            self._step(command, Phase.FAILED, str(exc), candidate=None)
            return Phase.FAILED
        try:
            self._step(command, Phase.VERIFYING, sha, candidate=sha)
            candidate = self.open_model(path)  # hashes, signature against the trusted keys, load, golden self-test
            refusal = judge_candidate(self.serving, candidate, command)
            if refusal is not None:
                raise BundleError(refusal)
        except EdgekitError as exc:  # this bundle will never do on this device
            self._step(command, Phase.REFUSED, str(exc), candidate=None)
            self._prune()
            return Phase.REFUSED
        self._step(command, Phase.TESTING, "self-test passed")
        old = self.serving
        before = self.probe.snapshot() - before_start
        self._step(command, Phase.SWITCHING, sha)
        try:
            self.swap(candidate)
        except EdgekitError as exc:
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
        except (OSError, EdgekitError):
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
        except EdgekitError as exc:
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
