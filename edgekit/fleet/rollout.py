"""A staged rollout, and a fleet-wide rollback, driven over a :class:`Link` (the MQTT one is :mod:`edgekit.fleet.link`).

A deploy goes to the canary first (:func:`~edgekit.fleet.rules.split_canary`), one command per device on
``edgekit/{fleet}/{device}/cmd`` with the id ``{rollout}-{device}``, and waits until each canary device's events
reach a final status or the timeout. Any canary device that did not commit aborts the rollout: the canary
devices that did commit are sent ``rollback``, and the rest is never sent anything. With an
:class:`~edgekit.fleet.rules.AbortRule`, the canary is then watched for ``bake`` seconds and the rule judged on
each canary device's telemetry windows since its commit (read from the collector's store). Only then is the
rest sent the same command, all at once.

A rollback and a ``set-config`` go to every target at once, and wait for each one's final status.

Each command's body is built as the contract's Struct (:mod:`edgekit_runtime.contract.commands`) and handed to
the link as JSON values: the runner adds each device's id, and the link the binding and the signature.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from edgekit.fleet.rules import FINAL, resolve_targets, split_canary
from edgekit_runtime.contract.commands import Deploy, Rollback, SetConfig, Status

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edgekit.fleet.link import FleetMessage
    from edgekit.fleet.rules import AbortRule, DeviceState
    from edgekit.telemetry.store import Store
    from edgekit_runtime.contract.commands import Body


class Link(Protocol):
    """What a rollout needs of a connection to the fleet."""

    def command(self, target: str, doc: dict[str, Any], timeout: float = 10.0) -> None:
        """Send ``doc`` to ``target`` (a device id)."""

    def next_message(self, timeout: float) -> FleetMessage | None:
        """The next state or event message, or ``None`` after ``timeout`` seconds."""


def new_rollout_id(clock: Callable[[], float] = time.time) -> str:
    """``r20261125T101500-1a2b``: sortable, and unique enough to tell rollouts apart."""
    stamp = dt.datetime.fromtimestamp(clock(), tz=dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"r{stamp}-{secrets.token_hex(2)}"


@dataclass
class DeviceStep:
    """Where one device's command got to."""

    device: str
    #: ``canary``, ``rest`` or ``rollback``
    stage: str
    command: str
    id: str
    #: ``pending`` (not sent), ``sent``, then the device's event statuses; ``timeout`` if none was final in time
    status: str = "pending"
    detail: str = ""
    #: the model the device named in its last event
    version: str | None = None
    #: Unix seconds: when the command was sent, and when the device reported its last step
    sent: float | None = None
    reported: float | None = None

    @property
    def final(self) -> bool:
        """Whether the command has ended on the device (or was given up on)."""
        return self.status in FINAL or self.status == "timeout"


@dataclass
class RolloutResult:
    """What a rollout (or rollback) did; ``outcome``: ``completed``, ``aborted`` or ``incomplete``."""

    id: str
    command: str
    targets: list[str]
    canary: list[str] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)
    steps: list[DeviceStep] = field(default_factory=list)
    outcome: str = "completed"
    reason: str = ""
    bundle: dict[str, Any] | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As plain JSON values."""
        return {**asdict(self), "steps": [asdict(s) for s in self.steps]}


class Runner:
    """Sends commands and follows their events; ``on_change`` is told after every step (a live table)."""

    def __init__(
        self,
        link: Link,
        result: RolloutResult,
        *,
        on_change: Callable[[RolloutResult], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Record into ``result``."""
        self.link = link
        self.result = result
        self.on_change = on_change or (lambda _r: None)
        self.clock = clock

    def stage(self, devices: Sequence[str], stage: str, doc: dict[str, Any], timeout: float) -> list[DeviceStep]:
        """Send ``doc`` (plus an id of its own) to each of ``devices``; wait for each to end, or ``timeout``."""
        steps = [DeviceStep(d, stage, str(doc["command"]), self._id(d, stage)) for d in devices]
        self.result.steps.extend(steps)
        self.on_change(self.result)
        by_id = {step.id: step for step in steps}
        for step in steps:
            self.link.command(step.device, {**doc, "id": step.id})
            step.status, step.sent = "sent", time.time()
            self.on_change(self.result)
        deadline = self.clock() + timeout
        while not all(step.final for step in steps) and (left := deadline - self.clock()) > 0:
            message = self.link.next_message(min(left, 0.5))
            if message is not None and self._take(message, by_id):
                self.on_change(self.result)
        for step in steps:
            if not step.final:
                step.status, step.detail = "timeout", f"no final status in {timeout:g} s"
        self.on_change(self.result)
        return steps

    def _id(self, device: str, stage: str) -> str:
        kind = "rb-" if stage == "rollback" else ""
        return f"{self.result.id}-{kind}{device}"[:128]

    @staticmethod
    def _take(message: FleetMessage, by_id: dict[str, DeviceStep]) -> bool:
        step = by_id.get(str(message.doc.get("id")))
        if message.kind != "events" or step is None or step.final or message.device != step.device:
            return False
        step.status = str(message.doc.get("status"))
        step.detail = str(message.doc.get("detail") or "")
        model = message.doc.get("model")
        if isinstance(model, dict) and model.get("version") is not None:
            step.version = str(model["version"])
        sent = message.doc.get("time")
        step.reported = float(sent) if isinstance(sent, (int, float)) else message.received
        return True


@dataclass(frozen=True)
class DeployPlan:
    """What to deploy where, and when to stop."""

    source: str
    sha256: str
    targets: list[str]
    #: the canary's share of the targets, in (0, 1]
    canary: float = 0.1
    #: seconds each stage may take
    timeout: float = 300.0
    abort_rule: AbortRule | None = None
    #: seconds the committed canary is watched before ``abort_rule`` is judged
    bake: float = 30.0
    #: bytes of the bundle file: devices fetch no more than this
    size: int = 0
    #: the devices may install an older version (or the same version with another model)
    allow_downgrade: bool = False
    #: the devices may install a model whose inputs differ from the one they serve
    allow_schema_change: bool = False

    def command(self) -> dict[str, Any]:
        """The deploy command's body, with the consents given only (the runner adds the id, the link signs it)."""
        request = Deploy(
            source=self.source,
            sha256=self.sha256,
            size=self.size,
            allow_downgrade=self.allow_downgrade,
            allow_schema_change=self.allow_schema_change,
        )
        return _body(request)


def _body(command: Body) -> dict[str, Any]:
    """``command`` as JSON values, leaving out what it leaves unset and the consents it does not give."""
    doc: dict[str, Any] = msgspec.to_builtins(command)
    return doc


def deploy(
    link: Link,
    plan: DeployPlan,
    *,
    rollout_id: str | None = None,
    metrics: Callable[[str, float], dict[str, float | None]] | None = None,
    on_change: Callable[[RolloutResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutResult:
    """Deploy to the canary, judge it, then to the rest (see the module's docstring)."""
    canary, rest = split_canary(plan.targets, plan.canary)
    result = RolloutResult(
        id=rollout_id or new_rollout_id(), command="deploy", targets=sorted(plan.targets), canary=canary, rest=rest
    )
    result.source = plan.source
    runner = Runner(link, result, on_change=on_change)
    doc = plan.command()
    steps = runner.stage(canary, "canary", doc, plan.timeout)
    reason = _canary_failure(steps)
    if reason is None and plan.abort_rule is not None and metrics is not None:
        sleep(plan.bake)
        reason = _judge(steps, plan.abort_rule, metrics)
    if reason is not None:
        result.outcome, result.reason = "aborted", reason
        committed = [s.device for s in steps if s.status == "committed"]
        if committed:
            runner.stage(committed, "rollback", _body(Rollback()), plan.timeout)
        return result
    if rest:
        done = runner.stage(rest, "rest", doc, plan.timeout)
        missed = [s for s in done if s.status != "committed"]
        if missed:
            result.outcome = "incomplete"
            result.reason = f"{len(missed)} of {len(rest)} devices after the canary did not commit: " + _list(missed)
    return result


def rollback(
    link: Link,
    devices: Sequence[str],
    *,
    timeout: float = 120.0,
    rollout_id: str | None = None,
    on_change: Callable[[RolloutResult], None] | None = None,
) -> RolloutResult:
    """Send ``rollback`` to each of ``devices`` and wait for the results."""
    doc = _body(Rollback())
    return _to_each(link, devices, doc, "rolled_back", "did not roll back", timeout, rollout_id, on_change)


def set_config(
    link: Link,
    devices: Sequence[str],
    values: dict[str, Any],
    *,
    timeout: float = 60.0,
    rollout_id: str | None = None,
    on_change: Callable[[RolloutResult], None] | None = None,
) -> RolloutResult:
    """Send ``set-config`` with ``values`` to each of ``devices``; each answers ``done`` or ``refused`` (all of it)."""
    doc = _body(SetConfig(config=values))
    return _to_each(link, devices, doc, "done", "did not take the settings", timeout, rollout_id, on_change)


def _to_each(  # noqa: PLR0917  (the two commands' options, passed on)
    link: Link,
    devices: Sequence[str],
    doc: dict[str, Any],
    wanted: str,
    missed_what: str,
    timeout: float,
    rollout_id: str | None,
    on_change: Callable[[RolloutResult], None] | None,
) -> RolloutResult:
    """Send ``doc`` to each of ``devices`` at once; ``incomplete`` unless each ends in ``wanted``."""
    command = str(doc["command"])
    result = RolloutResult(id=rollout_id or new_rollout_id(), command=command, targets=sorted(devices))
    steps = Runner(link, result, on_change=on_change).stage(result.targets, command, doc, timeout)
    missed = [s for s in steps if s.status != wanted]
    if missed:
        result.outcome = "incomplete"
        result.reason = f"{len(missed)} of {len(steps)} devices {missed_what}: " + _list(missed)
    return result


def _canary_failure(steps: Sequence[DeviceStep]) -> str | None:
    missed = [s for s in steps if s.status != "committed"]
    if not missed:
        return None
    return "the canary did not commit: " + _list(missed)


def _list(steps: Sequence[DeviceStep]) -> str:
    return "; ".join(f"{s.device} {s.status}" + (f" ({s.detail[:160]})" if s.detail else "") for s in steps)


def _judge(
    steps: Sequence[DeviceStep], rule: AbortRule, metrics: Callable[[str, float], dict[str, float | None]]
) -> str | None:
    for step in steps:
        why = rule.reason(metrics(step.device, step.reported or 0.0))
        if why is not None:
            return f"--abort-if on canary {step.device}: {why}"
    return None


def store_metrics(store: Store, fleet: str) -> Callable[[str, float], dict[str, float | None]]:
    """A device's ``error_rate`` and ``p99_ms`` over its windows that ended after ``since``, from ``store``."""

    def metrics(device: str, since: float) -> dict[str, float | None]:
        points = store.series(device, since=since, fleet=fleet)
        weights = [(p.requests_per_s or 0.0, p.error_rate) for p in points if p.error_rate is not None]
        total = sum(w for w, _ in weights)
        p99s = [p.p99 for p in points if p.p99 is not None]
        return {
            "error_rate": sum(w * rate for w, rate in weights) / total if total else None,
            "p99_ms": max(p99s) if p99s else None,
        }

    return metrics


class TargetLink(Link, Protocol):
    """A link that also knows the fleet's retained states."""

    def collect_states(self, seconds: float = 1.0) -> list[DeviceState]:
        """Every device's retained state, after waiting ``seconds`` for them."""


def find_targets(
    link: TargetLink,
    *,
    devices: Sequence[str] | None = None,
    group: str | None = None,
    settle: float = 1.0,
    answer: float = 2.0,
) -> list[str]:
    """``devices``, or the online devices of the fleet (of ``group``) from their retained states.

    A state that does not list its device's groups is judged by asking: a ``status`` command sent to
    ``@group``, and the devices that answer within ``answer`` seconds are its members.
    """
    if devices:
        return sorted(set(devices))
    states = link.collect_states(settle)
    members: set[str] | None = None
    if group is not None and any(s.groups is None for s in states if s.status == "online"):
        command_id = f"who-{group}-{secrets.token_hex(4)}"
        link.command(f"@{group}", _body(Status(id=command_id)))
        members = set()
        deadline = time.monotonic() + answer
        while (left := deadline - time.monotonic()) > 0:
            message = link.next_message(left)
            if message is not None and message.kind == "events" and message.doc.get("id") == command_id:
                members.add(message.device)
    return resolve_targets(states, group=group, members=members)
