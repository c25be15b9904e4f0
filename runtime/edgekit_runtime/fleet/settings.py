"""``set-config``: the settings an operator may change on a running device, checked, applied at once and kept.

A command ``{"id", "command": "set-config", "config": {KEY: VALUE, ...}}`` changes any of :data:`KEYS`. The whole
change is checked first: an unknown key or a value out of range refuses all of it (``refused``, one line naming
each key and what it may be), and nothing changes. Otherwise it is written to ``{state_dir}/config.json``
(crash-safely, merged with what earlier commands chose), then takes effect at once:

- ``deploy_watch``, ``max_error_rate``, ``max_latency_ratio``, ``min_requests``: the deployer's health policy
  is replaced (it is frozen). Commands run one at a time, so a deploy watching now is judged by the policy it
  started with, and the next deploy by the new one;
- ``telemetry_interval``: the open window is closed, and windows of the new length follow (each window carries
  its own start and end, so the collector reads them as before);
- ``log_level``: the runtime's loggers and uvicorn's.

The retained state gains ``config``, the effective values, and the event ``done`` says what changed. At the next
start the file is read again and wins over the command line's flags (the operator's later choice), and the
runtime says which flags it overrode.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.fleet.deploy import HealthPolicy, Phase
from edgekit_runtime.fleet.models import write_atomically

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

logger = logging.getLogger("edgekit_runtime.fleet")

#: the file in the state directory
CONFIG = "config.json"
#: the levels ``log_level`` takes
LOG_LEVELS = ("debug", "info", "warning", "error")
#: the loggers ``log_level`` sets: the runtime's, and the ones uvicorn's own configuration sets
LOGGERS = ("edgekit_runtime", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

#: a setting's value
Value: TypeAlias = float | int | str


@dataclass(frozen=True)
class Key:
    """What one setting may be: a number in a range, a whole number, or one of ``choices``."""

    #: what it may be, in words (refusals and docs say it)
    allowed: str
    low: float = -math.inf
    high: float = math.inf
    #: ``low`` itself is not allowed
    above: bool = False
    whole: bool = False
    choices: tuple[str, ...] = ()

    def read(self, value: object) -> Value | None:
        """``value`` as kept, or ``None`` when it is not allowed (JSON's ``true`` is not a number)."""
        if self.choices:
            return value if isinstance(value, str) and value in self.choices else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        if value < self.low or (self.above and value == self.low) or value > self.high:
            return None
        if self.whole:
            return int(value) if float(value).is_integer() else None
        return float(value)


KEYS: dict[str, Key] = {
    "deploy_watch": Key("seconds from 0 to 86400", low=0, high=86_400),
    "max_error_rate": Key("a rate from 0 to 1", low=0, high=1),
    "max_latency_ratio": Key("a number > 0", low=0, above=True),
    "min_requests": Key("a whole number >= 0", low=0, whole=True),
    "telemetry_interval": Key("seconds from 0.05 to 86400", low=0.05, high=86_400),
    "log_level": Key(f"one of {', '.join(LOG_LEVELS)}", choices=LOG_LEVELS),
}

_POLICY = HealthPolicy()


@dataclass(frozen=True)
class DeviceConfig:
    """The values :data:`KEYS` name, as the device runs with them now."""

    #: seconds a newly deployed model is watched (``--deploy-watch``)
    deploy_watch: float = _POLICY.window
    max_error_rate: float = _POLICY.max_error_rate
    max_latency_ratio: float = _POLICY.max_latency_ratio
    min_requests: int = _POLICY.min_requests
    #: seconds per telemetry window (``--telemetry-interval``)
    telemetry_interval: float = 10.0
    #: ``--log-level`` (which also takes ``critical`` and ``trace``)
    log_level: str = "warning"

    def policy(self) -> HealthPolicy:
        """The deployer's health policy."""
        return HealthPolicy(
            window=self.deploy_watch,
            max_error_rate=self.max_error_rate,
            max_latency_ratio=self.max_latency_ratio,
            min_requests=self.min_requests,
        )

    def changed(self, values: Mapping[str, Value]) -> DeviceConfig:
        """With ``values`` (checked by :func:`check`) instead."""
        fields: dict[str, Any] = dict(values)  # each checked against its field by check()
        return dataclasses.replace(self, **fields)

    def to_json(self) -> dict[str, Value]:
        """As the retained state's ``config``."""
        return dataclasses.asdict(self)


def check(values: object, *, empty: bool = True) -> dict[str, Value]:
    """``values`` (a JSON object of settings) as kept; :class:`ConfigError` naming every key that is not allowed.

    ``empty``: whether no settings at all will do (a file, yes; a command, no).
    """
    if not isinstance(values, dict) or not (values or empty):
        raise ConfigError(
            f"set-config needs 'config', an object of settings such as {{\"deploy_watch\": 10}}: {_keys()}"
        )
    kept: dict[str, Value] = {}
    problems = []
    unknown = [f"'{key}'" for key in values if key not in KEYS]
    if unknown:
        problems.append(f"{', '.join(unknown)}: not a setting ({_keys()})")
    for key, spec in KEYS.items():
        if key not in values:
            continue
        read = spec.read(values[key])
        if read is None:
            problems.append(f"{key} {_short(values[key])} is not allowed: use {spec.allowed}")
        else:
            kept[key] = read
    if problems:
        raise ConfigError("; ".join(problems))
    return kept


def changes(old: DeviceConfig, new: DeviceConfig) -> list[str]:
    """``["deploy_watch 30 -> 0", ...]``: what differs."""
    before, after = old.to_json(), new.to_json()
    return [f"{key} {_text(before[key])} -> {_text(after[key])}" for key in KEYS if before[key] != after[key]]


class ConfigFile:
    """``{state_dir}/config.json``: what ``set-config`` chose, kept across restarts."""

    def __init__(self, state_dir: Path) -> None:
        """The file in ``state_dir`` (it need not exist)."""
        self.path = Path(state_dir) / CONFIG

    def load(self) -> dict[str, Value]:
        """The settings chosen so far (``{}`` before the first ``set-config``)."""
        try:
            doc = json.loads(self.path.read_text())
        except (FileNotFoundError, NotADirectoryError):  # none yet; a state dir that cannot be made fails later
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.path} cannot be read ({exc}): move it aside to start with the command line's settings"
            ) from None
        try:
            return check(doc)
        except ConfigError as exc:
            raise ConfigError(
                f"{self.path}: {exc}: fix it, or move it aside to start with the command line's settings"
            ) from None

    def save(self, values: Mapping[str, Value]) -> None:
        """Write ``values`` crash-safely (a temporary file, fsync, rename)."""
        write_atomically(self.path, [json.dumps(dict(values), sort_keys=True, indent=1).encode()])


def starting_config(flags: DeviceConfig, file: ConfigFile) -> tuple[DeviceConfig, list[str]]:
    """The command line's values with the file's on top; and what the file changed (to say at start)."""
    config = flags.changed(file.load())
    return config, changes(flags, config)


def set_log_level(level: str) -> None:
    """Set the level of :data:`LOGGERS`."""
    for name in LOGGERS:
        logging.getLogger(name).setLevel(level.upper())


class PolicyHolder(Protocol):
    """What runs deploys (the deployer): its policy is replaced whole."""

    policy: HealthPolicy


class IntervalHolder(Protocol):
    """What cuts telemetry windows (the running telemetry)."""

    def set_interval(self, seconds: float) -> None:
        """Windows of ``seconds`` from now on."""


class StateHolder(Protocol):
    """What publishes the retained state (the publisher)."""

    def update_state(self, **fields: object) -> None:
        """Change the state and publish it again."""


class SetConfig:
    """The ``set-config`` command (``run``, registered in the agent's table), and the config it keeps."""

    def __init__(
        self,
        config: DeviceConfig,
        file: ConfigFile,
        *,
        deployer: PolicyHolder,
        telemetry: IntervalHolder,
        state: StateHolder,
        emit: Callable[[str, Phase | str, str], None],
    ) -> None:
        """``config``: in effect now (``file``'s settings over the flags); the retained state gets it."""
        self.config = config
        self.file = file
        self.deployer = deployer
        self.telemetry = telemetry
        self.state = state
        self.emit = emit
        #: what ``file`` holds: every setting chosen so far
        self.chosen: dict[str, Value] = file.load()
        state.update_state(config=config.to_json())

    def run(self, command_id: str, doc: Mapping[str, Any]) -> None:
        """Check all of ``doc["config"]``; keep it, apply it and say what changed, or refuse it all."""
        values = doc.get("config")
        try:
            wanted = check(values, empty=False)
        except ConfigError as exc:
            self.emit(command_id, Phase.REFUSED, str(exc))
            return
        chosen = {**self.chosen, **wanted}
        try:
            self.file.save(chosen)
        except OSError as exc:
            self.emit(command_id, Phase.FAILED, f"{self.file.path} cannot be written ({exc}): nothing changed")
            return
        self.chosen = chosen
        old, self.config = self.config, self.config.changed(wanted)
        self.apply(old, self.config)
        said = changes(old, self.config)
        logger.info("fleet: set-config %s", "; ".join(said) or "changed nothing")
        self.emit(command_id, "done", "; ".join(said) or f"no change: {_already(wanted)}")

    def apply(self, old: DeviceConfig, new: DeviceConfig) -> None:
        """Make ``new`` the settings in effect (``old``: the ones until now)."""
        self.deployer.policy = new.policy()  # frozen: replaced whole
        if new.telemetry_interval != old.telemetry_interval:
            self.telemetry.set_interval(new.telemetry_interval)
        if new.log_level != old.log_level:
            set_log_level(new.log_level)
        self.state.update_state(config=new.to_json())


def _keys() -> str:
    return "settings are " + ", ".join(KEYS)


def _already(values: Mapping[str, Value]) -> str:
    return ", ".join(f"{key} is already {_text(value)}" for key, value in values.items())


def _text(value: Value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."  # noqa: PLR2004
