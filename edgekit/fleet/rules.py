"""The parts of a staged rollout that are plain values: the canary share, the abort rule, who is targeted.

Nothing here touches the network or the clock, so each piece is tested on its own:

- :func:`parse_canary` reads ``--canary 10%`` (or ``0.1``) into a fraction in (0, 1];
- :func:`split_canary` picks the canary: ``ceil(fraction * N)`` devices, at least one, the first of the sorted ids;
- :func:`parse_abort_if` reads ``--abort-if "error_rate>0.05 or p99_ms>=40"`` with a tiny parser (no ``eval``);
- :func:`resolve_targets` turns ``--devices`` / ``--group`` and the fleet's retained states into device ids;
- :func:`parse_settings` reads ``set-config``'s ``KEY=VALUE`` arguments.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigError, FleetError
from edgekit.telemetry.messages import NAME
from edgekit_runtime.contract.statuses import FINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

#: the statuses that end a command on a device (the contract's: defined once, in the runtime)
FINAL = FINAL_STATUSES
#: the metrics ``--abort-if`` knows, and what each means
METRICS = {
    "error_rate": "failed requests over all requests in the windows since the commit (0 to 1)",
    "p99_ms": "the highest latency p99 (ms) of those windows",
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_SETTING = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|==|>|<)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_canary(text: str) -> float:
    """``"10%"`` or ``"0.1"`` as a fraction in (0, 1]."""
    raw = text.strip()
    try:
        fraction = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"--canary '{text}' is not a share: write a percentage such as 10%") from None
    if not 0 < fraction <= 1 or math.isnan(fraction):
        raise ConfigError(f"--canary '{text}' is out of range: use more than 0% and at most 100%")
    return fraction


def split_canary(devices: Iterable[str], fraction: float) -> tuple[list[str], list[str]]:
    """The canary (``ceil(fraction * N)``, at least one, the first sorted ids) and the rest."""
    ordered = sorted(set(devices))
    if not ordered:
        return [], []
    size = max(1, math.ceil(round(fraction * len(ordered), 9)))  # round: 0.34 * 3 is 1.0200000000000002
    return ordered[:size], ordered[size:]


@dataclass(frozen=True)
class Condition:
    """``METRIC OP NUMBER``."""

    metric: str
    op: str
    value: float

    def holds(self, metrics: Mapping[str, float | None]) -> bool:
        """Whether the condition is true of ``metrics`` (a metric with no value never is)."""
        seen = metrics.get(self.metric)
        return seen is not None and _OPS[self.op](seen, self.value)

    def __str__(self) -> str:
        """As written."""
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class AbortRule:
    """Conditions joined with ``or``: the rollout stops when any holds on any canary device."""

    conditions: tuple[Condition, ...]

    def reason(self, metrics: Mapping[str, float | None]) -> str | None:
        """The first condition that holds, with the value seen, or ``None``."""
        for condition in self.conditions:
            if condition.holds(metrics):
                return f"{condition} ({condition.metric} was {metrics[condition.metric]:.4g})"
        return None

    def __str__(self) -> str:
        """As written."""
        return " or ".join(str(c) for c in self.conditions)


def parse_abort_if(text: str) -> AbortRule:
    """``"error_rate>0.05 or p99_ms>40"`` as an :class:`AbortRule`."""
    parts = re.split(r"\s+or\s+", text.strip())
    known = ", ".join(METRICS)
    conditions = []
    for part in parts:
        match = _CONDITION.match(part)
        if match is None:
            raise ConfigError(
                f"--abort-if '{text}': '{part.strip()}' is not METRIC OP NUMBER: write e.g. error_rate>0.05"
                " (conditions joined with 'or')"
            )
        metric, op, number = match.groups()
        if metric not in METRICS:
            raise ConfigError(f"--abort-if '{text}': unknown metric '{metric}': use {known}")
        conditions.append(Condition(metric, op, float(number)))
    return AbortRule(tuple(conditions))


@dataclass(frozen=True)
class DeviceState:
    """A device's retained state message, as the operator needs it."""

    device: str
    status: str
    model_name: str | None = None
    model_version: str | None = None
    #: the groups the device says it is in (``None``: the state does not say)
    groups: tuple[str, ...] | None = None

    @classmethod
    def from_message(cls, doc: Mapping[str, Any]) -> DeviceState | None:
        """The state in ``doc``, or ``None`` for a message that is not one."""
        device, status = doc.get("device"), doc.get("status")
        if not isinstance(device, str) or not isinstance(status, str):
            return None
        raw = doc.get("model")
        model: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        groups = doc.get("groups")
        return cls(
            device=device,
            status=status,
            model_name=_text(model.get("name")),
            model_version=_text(model.get("version")),
            groups=tuple(str(g) for g in groups) if isinstance(groups, list) else None,
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def parse_devices(text: str) -> list[str]:
    """``--devices a,b,c`` as ids, each checked."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ConfigError("--devices names no device: write --devices pi-1,pi-2")
    for device in ids:
        if not NAME.fullmatch(device):
            raise ConfigError(f"--devices: '{device}' is not a device id: use 1 to 64 of A-Z a-z 0-9 . _ -")
    return sorted(set(ids))


def resolve_targets(
    states: Sequence[DeviceState],
    *,
    devices: Sequence[str] | None = None,
    group: str | None = None,
    members: Iterable[str] | None = None,
) -> list[str]:
    """The devices to send a command to, sorted.

    ``devices``: exactly those. Otherwise the online devices among ``states``; with ``group``, only those in it:
    the state's ``groups`` when it says, else ``members`` (the devices that answered a command sent to the group).
    """
    if devices:
        return sorted(set(devices))
    online = [s for s in states if s.status == "online"]
    if group is not None:
        answered = set(members or ())
        online = [s for s in online if (group in s.groups if s.groups is not None else s.device in answered)]
    found = sorted({s.device for s in online})
    if not found:
        where = f"in group '{group}' " if group is not None else ""
        raise FleetError(
            f"no online device {where}has a retained state on the broker: check --fleet, or name them with --devices"
        )
    return found


def parse_settings(pairs: Sequence[str]) -> dict[str, str | int | float | bool | None]:
    """``["deploy_watch=10", "log_level=info"]`` as ``{"deploy_watch": 10, "log_level": "info"}``.

    A VALUE is read as a JSON scalar (``10``, ``0.5``, ``true``, ``"text"``); a bare word that is not JSON is text.
    Which keys a device takes, and in what range, is the device's to say: it refuses a bad one by name.
    """
    if not pairs:
        raise ConfigError("set-config needs at least one KEY=VALUE, e.g. deploy_watch=10")
    values: dict[str, str | int | float | bool | None] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip()
        if not equals or not _SETTING.fullmatch(key) or not text.strip():
            raise ConfigError(f"'{pair}' is not KEY=VALUE: write e.g. deploy_watch=10 or log_level=info")
        if key in values:
            raise ConfigError(f"{key} is given twice: give each setting once")
        try:
            value = json.loads(text)
        except ValueError:
            value = text.strip()
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}={text}: a setting is one number, word or true/false, not a JSON object or list")
        values[key] = value
    return values
