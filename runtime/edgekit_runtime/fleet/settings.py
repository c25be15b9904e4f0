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

Every value has a finite range (a value the device could not encode again, such as ``min_requests`` 1e30, would
break every later state message), and a string is one of its choices: both are the contract's
(:class:`~edgekit_runtime.contract.settings.SettingsChange`), :data:`KEYS` is read from it, and each value is
decoded as its field. A command may name at most :data:`MAX_KEYS` keys. A kept file that no longer passes these
checks (edited by hand, damaged, or written by an older build that allowed more) is ignored whole at start, never
fatal: a device that cannot start can only be mended with a shell on it. :func:`starting_config` says why, the
runtime logs it, the device runs with the command line's settings, and the next ``set-config`` writes a good file
over it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, cast, get_args, get_origin, get_type_hints

import msgspec

from edgekit_runtime.contract.commands import MAX_SETTINGS
from edgekit_runtime.contract.settings import SettableLogLevel, SettingsChange
from edgekit_runtime.contract.statuses import DONE, Phase
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.fleet.deploy_health import HealthPolicy
from edgekit_runtime.fleet.models import write_atomically

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

logger = logging.getLogger("edgekit_runtime.fleet")

#: the file in the state directory
CONFIG = "config.json"
#: the levels ``log_level`` takes (``--log-level`` takes ``critical`` and ``trace`` too)
LOG_LEVELS: tuple[str, ...] = get_args(SettableLogLevel)
#: the loggers ``log_level`` sets: the runtime's, and the ones uvicorn's own configuration sets
LOGGERS = ("edgekit_runtime", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

#: a setting's value
Value: TypeAlias = float | int | str
#: most keys a command's ``config`` (or the kept file) may name: the settings, and room for a few typos
MAX_KEYS = MAX_SETTINGS
#: most characters of a choice (a string value is one of them)
MAX_TEXT = 64
#: most bytes of the kept file (it holds a few short settings)
MAX_FILE_BYTES = 64 << 10
#: what a number is, in the words a refusal says (the rest: "a whole number", "a number")
WORDS = {"deploy_watch": "seconds", "max_error_rate": "a rate", "telemetry_interval": "seconds"}


@dataclass(frozen=True)
class Key:
    """What one setting may be, as the contract says it: a number in a finite range, a whole number, or a choice."""

    #: what it may be, in words (refusals and docs say it)
    allowed: str
    low: float = 0.0
    high: float = 0.0
    #: ``low`` itself is not allowed
    above: bool = False
    whole: bool = False
    choices: tuple[str, ...] = ()

    @classmethod
    def of(cls, field: msgspec.inspect.Field) -> Key:
        """The key of one of :class:`SettingsChange`'s fields."""
        kind = field.type
        if isinstance(kind, msgspec.inspect.LiteralType):  # its values sorted: the contract's order is the hint's
            hint = get_type_hints(SettingsChange)[field.name]  # Literal[...] | UnsetType
            literal = next(arg for arg in get_args(hint) if get_origin(arg) is Literal)
            choices = tuple(str(value) for value in get_args(literal))
            return cls(f"one of {', '.join(choices)}", choices=choices)
        if not isinstance(kind, (msgspec.inspect.IntType, msgspec.inspect.FloatType)) or kind.le is None:
            raise TypeError(f"setting {field.name} is {kind}: give it a finite range or choices")
        whole, above = isinstance(kind, msgspec.inspect.IntType), kind.gt is not None
        low = kind.gt if kind.gt is not None else kind.ge or 0
        words = WORDS.get(field.name, "a whole number" if whole else "a number")
        span = f"> {_bound(low)}, up to {_bound(kind.le)}" if above else f"from {_bound(low)} to {_bound(kind.le)}"
        return cls(f"{words} {span}", low=low, high=kind.le, above=above, whole=whole)


def _bound(number: float) -> str:
    """A range's end as a refusal says it: ``86400``, ``0.05``."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


#: the settings and their ranges, read from the contract (docs/fleet.md has the same table)
KEYS: dict[str, Key] = {
    field.name: Key.of(field)
    for field in cast("msgspec.inspect.StructType", msgspec.inspect.type_info(SettingsChange)).fields
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

    Each value is decoded as its field of the contract's :class:`SettingsChange` (its type and range), one key at
    a time, so that a refusal names every key that is wrong. ``empty``: whether no settings at all will do (a
    file, yes; a command, no).
    """
    if not isinstance(values, dict) or not (values or empty):
        raise ConfigError(
            f"set-config needs 'config', an object of settings such as {{\"deploy_watch\": 10}}: {_keys()}"
        )
    if len(values) > MAX_KEYS:
        raise ConfigError(f"set-config's config names {len(values)} keys: send at most {MAX_KEYS} ({_keys()})")
    kept: dict[str, Value] = {}
    problems = []
    unknown = [f"'{_cut(str(key))}'" for key in values if key not in KEYS]
    if unknown:
        problems.append(f"{', '.join(unknown)}: not a setting ({_keys()})")
    for key, spec in KEYS.items():
        if key not in values:
            continue
        try:
            kept[key] = _decoded(key, values[key])
        except msgspec.ValidationError:
            problems.append(f"{key} {_short(values[key])} is not allowed: use {spec.allowed}")
    if problems:
        raise ConfigError("; ".join(problems))
    return kept


def _decoded(key: str, value: object) -> Value:
    """``value`` decoded as ``key`` of :class:`SettingsChange`; JSON has one kind of number, so 50.0 is a whole 50."""
    change = msgspec.convert({key: value}, SettingsChange, strict=not isinstance(value, float))
    decoded: Value = getattr(change, key)
    return decoded


def changes(old: DeviceConfig, new: DeviceConfig) -> list[str]:
    """``["deploy_watch 30 -> 0", ...]``: what differs."""
    before, after = old.to_json(), new.to_json()
    return [f"{key} {_text(before[key])} -> {_text(after[key])}" for key in KEYS if before[key] != after[key]]


class ConfigFile:
    """``{state_dir}/config.json``: what ``set-config`` chose, kept across restarts."""

    def __init__(self, state_dir: Path) -> None:
        """The file in ``state_dir`` (it need not exist)."""
        self.path = Path(state_dir) / CONFIG

    def load(self) -> tuple[dict[str, Value], str]:
        """The settings chosen so far (``{}`` before the first ``set-config``), and ``""``.

        A file that cannot be read or no longer passes :func:`check` is ignored whole: ``({}, why)``, one line
        naming the file, the problem and the fix (a device must start, whatever its state directory holds).
        """
        try:
            doc = self._document()
        except (FileNotFoundError, NotADirectoryError):  # none yet; a state dir that cannot be made fails later
            return {}, ""
        except ConfigError as exc:
            return {}, self._ignored(f" {exc}")
        try:
            return check(doc), ""
        except ConfigError as exc:
            return {}, self._ignored(f": {exc}")

    def _document(self) -> object:
        """The file's JSON; :class:`ConfigError` saying why there is none (``FileNotFoundError``: no file)."""
        try:
            with self.path.open("rb") as kept:
                data = kept.read(MAX_FILE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise
        except OSError as exc:
            raise ConfigError(f"cannot be read ({exc.strerror or exc})") from None
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"is larger than {MAX_FILE_BYTES >> 10} KiB")
        try:
            return json.loads(data)
        except RecursionError:
            raise ConfigError("is not JSON (nested too deep)") from None
        except ValueError as exc:  # not UTF-8, not JSON, an integer of thousands of digits
            raise ConfigError(f"is not JSON ({str(exc).split(':')[0]})") from None

    def _ignored(self, problem: str) -> str:
        return (
            f"{self.path}{problem}; it is ignored and the command line's settings apply: fix it, or delete it "
            "(the next set-config writes a new one)"
        )

    def save(self, values: Mapping[str, Value]) -> None:
        """Write ``values`` crash-safely (a temporary file, fsync, rename)."""
        write_atomically(self.path, [json.dumps(dict(values), sort_keys=True, indent=1).encode()])


@dataclass(frozen=True)
class StartingConfig:
    """The settings a device starts with, and what to say about them."""

    config: DeviceConfig
    #: what the kept file changed from the flags: ``("deploy_watch 30 -> 10", ...)``
    changed: tuple[str, ...] = ()
    #: why the kept file was ignored (one line for the log and the state; ``""`` when it was not)
    ignored: str = ""


def starting_config(flags: DeviceConfig, file: ConfigFile) -> StartingConfig:
    """The command line's values with the kept file's on top; the flags alone when the file is ignored."""
    values, ignored = file.load()
    config = flags.changed(values)
    return StartingConfig(config, tuple(changes(flags, config)), ignored)


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
        #: what ``file`` holds: every setting chosen so far (none when it was ignored: the next command replaces it)
        self.chosen: dict[str, Value]
        #: why the file was ignored at start (``""``: it was not; :func:`starting_config` said it)
        self.ignored: str
        self.chosen, self.ignored = file.load()
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
        self.emit(command_id, DONE, "; ".join(said) or f"no change: {_already(wanted)}")

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
    """A JSON value in at most 40 characters (a deep or long one is not serialised whole)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return json.dumps(_cut(value))
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 50:  # noqa: PLR2004
        return f"{float(value):g}" if value.bit_length() <= 1000 else "a number too large"  # noqa: PLR2004
    return _cut(json.dumps(value))


def _cut(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."  # noqa: PLR2004
