"""One MQTT message from a device into the rows the collector stores.

``edgekit/{fleet}/{device}/telemetry`` carries one window (``edgekit.telemetry/1``) or a batch of them
(``edgekit.telemetry-batch/1``); ``edgekit/{fleet}/{device}/state`` carries ``edgekit.state/1``;
``edgekit/{fleet}/{device}/events`` carries one step of a command (``edgekit.event/1``). The messages are
defined once, in :mod:`edgekit_runtime.contract`; the fields the store relies on (sequence number, times, counts,
statuses, the names matching the topic) are decoded with the contract's own types and bounds, the rest of a
message is kept as it came, in ``payload``: a message may lack what the store does not need, and may carry
fields this collector does not know yet (a newer device's). A message that fails a check raises
:class:`~edgekit.errors.TelemetryError` as a whole, a batch included: the sender is broken, and half a batch
would hide that.

JSON's non-standard ``NaN`` and ``Infinity`` are read as ``null`` (a sender's JSON library may write them), so
the stored payload is always valid JSON, which PostgreSQL's ``jsonb`` insists on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from edgekit.errors import TelemetryError
from edgekit_runtime.contract.commands import MAX_RESEND_WINDOWS
from edgekit_runtime.contract.events import EVENT_SCHEMA, MAX_ID_LENGTH, Detail, EventId, Resent
from edgekit_runtime.contract.failures import failed_at
from edgekit_runtime.contract.state import STATE_SCHEMA, DeviceStatus
from edgekit_runtime.contract.statuses import EVENT_COMMANDS, EVENT_STATUSES, EventCommand, EventStatus
from edgekit_runtime.contract.telemetry import BATCH_SCHEMA, WINDOW_SCHEMA
from edgekit_runtime.contract.values import MAX_INT, NAME_PATTERN, Count, Positive, PositiveCount, Seconds

#: the message kinds: the last level of the topic
KINDS = ("telemetry", "state", "events")
#: a fleet or device name: one MQTT topic level (the device checks the same)
NAME = re.compile(NAME_PATTERN)


class _Model(msgspec.Struct):
    """A window's or an event's ``model``, as far as the store reads it: labels, kept as they come."""

    name: str | None = None
    version: str | None = None
    sha256: str | None = None


class _Latency(msgspec.Struct):
    p99: Positive | None = None


class _Outbox(msgspec.Struct):
    dropped: Count | None = None


class _Window(msgspec.Struct):
    """What the store reads of a window (:class:`edgekit_runtime.contract.telemetry.Window`)."""

    seq: PositiveCount
    window_start: Seconds
    window_end: Seconds
    requests: Count
    # by kind: a kind this collector does not know yet (a newer device's) is counted too
    errors: dict[str, PositiveCount] = {}
    drift: bool = False
    latency_ms: _Latency | None = None
    model: _Model | None = None
    outbox: _Outbox | None = None


class _State(msgspec.Struct):
    """What the store reads of a state (:class:`edgekit_runtime.contract.state.State`)."""

    status: DeviceStatus


class _Event(msgspec.Struct):
    """What the store reads of an event (:class:`edgekit_runtime.contract.events.Event`)."""

    id: EventId
    command: EventCommand
    status: EventStatus
    time: Seconds
    detail: Detail | None = None
    model: _Model | None = None
    resent: Resent | None = None


#: what a field must be, by its path (``[]``: each value of an object), as refusals say it
_MUST = {
    "seq": f"an integer from 1 to {MAX_INT}",
    "requests": f"an integer from 0 to {MAX_INT}",
    "window_start": "a number (Unix seconds)",
    "window_end": "a number (Unix seconds)",
    "time": "a number (Unix seconds)",
    "errors": "a JSON object",
    "errors[]": "a count of 1 or more",
    "drift": "true or false",
    "latency_ms": "a JSON object",
    "latency_ms.p99": "a number or null",
    "outbox": "a JSON object",
    "outbox.dropped": "a count",
    "model": "a JSON object",
    "model.name": "a string",
    "model.version": "a string",
    "model.sha256": "a string",
    "status": "one of online, offline",
    "id": f"a string of 1 to {MAX_ID_LENGTH} characters",
    "command": f"one of {', '.join(EVENT_COMMANDS)}",
    "detail": "a string",
}
_EVENT_MUST = {**_MUST, "status": f"one of {', '.join(EVENT_STATUSES)}"}
_Fields = TypeVar("_Fields", bound=msgspec.Struct)


@dataclass(frozen=True)
class WindowRow:
    """One window, as a row of the ``telemetry`` table."""

    fleet: str
    device: str
    seq: int
    window_start: float
    window_end: float
    #: Unix seconds when the collector received it
    received: float
    requests: int
    #: failed requests, all kinds together
    errors: int
    #: latency p99 in ms (``None`` for an empty window)
    p99: float | None
    drift: bool
    model_name: str | None
    model_version: str | None
    #: the device outbox's dropped count at the time of sending
    dropped: int | None
    #: the window as JSON text
    payload: str


@dataclass(frozen=True)
class StateRow:
    """A device's last state, as a row of the ``device_state`` table."""

    fleet: str
    device: str
    status: str
    payload: str
    updated: float


@dataclass(frozen=True)
class EventRow:
    """One step of a command on a device, as a row of the ``events`` table."""

    fleet: str
    device: str
    #: the command's id (the same for every device a rollout sends it to)
    id: str
    #: one of :data:`EVENT_COMMANDS`
    command: str
    #: one of :data:`EVENT_STATUSES`
    status: str
    #: Unix seconds when the device sent it
    time: float
    detail: str
    #: Unix seconds when the collector received it
    received: float
    #: the event as JSON text
    payload: str
    #: a resend's ``done``: the ``seq`` the device no longer keeps, which the collector counts as lost
    lost: tuple[int, ...] = ()


@dataclass(frozen=True)
class Parsed:
    """What one message holds: windows, a state, or an event."""

    windows: tuple[WindowRow, ...] = ()
    state: StateRow | None = None
    event: EventRow | None = None


def parse_topic(topic: str) -> tuple[str, str, str]:
    """``edgekit/{fleet}/{device}/{telemetry|state|events}`` → ``(fleet, device, kind)``."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "edgekit" or parts[3] not in KINDS:  # noqa: PLR2004
        raise TelemetryError(f"topic '{topic}' is not edgekit/FLEET/DEVICE/telemetry, .../state or .../events: ignored")
    for kind, value in (("fleet", parts[1]), ("device", parts[2])):
        if not NAME.fullmatch(value):
            raise TelemetryError(f"topic '{topic}': {kind} '{value}' is not 1 to 64 of A-Z a-z 0-9 . _ -")
    return parts[1], parts[2], parts[3]


def parse_message(topic: str, payload: bytes, *, received: float) -> Parsed:
    """The rows in one message; :class:`TelemetryError` when it is not a valid edgekit message."""
    fleet, device, kind = parse_topic(topic)
    doc = _json_object(topic, payload)
    schema = doc.get("schema")
    expected = {"telemetry": (WINDOW_SCHEMA, BATCH_SCHEMA), "state": (STATE_SCHEMA,), "events": (EVENT_SCHEMA,)}[kind]
    if schema not in expected:
        raise TelemetryError(f"{topic}: schema {schema!r} is not one of {', '.join(expected)}: ignored")
    _same_names(topic, doc, fleet, device)
    if schema == EVENT_SCHEMA:
        return Parsed(event=_event(topic, doc, fleet, device, received))
    if schema == STATE_SCHEMA:
        state = _decode(topic, doc, _State, _MUST)
        return Parsed(state=StateRow(fleet, device, state.status, _dumps(topic, doc), received))
    if schema == WINDOW_SCHEMA:
        return Parsed(windows=(_window(topic, doc, fleet, device, received),))
    windows = doc.get("windows")
    if not isinstance(windows, list) or not windows:
        raise TelemetryError(f"{topic}: a batch needs a non-empty list 'windows', got {_short(windows)}")
    rows = []
    for i, window in enumerate(windows):
        where = f"{topic} windows[{i}]"
        if not isinstance(window, dict):
            raise TelemetryError(f"{where}: not a JSON object")
        if window.get("schema", WINDOW_SCHEMA) != WINDOW_SCHEMA:
            raise TelemetryError(f"{where}: schema {window.get('schema')!r} is not {WINDOW_SCHEMA}")
        _same_names(where, window, fleet, device, required=False)
        rows.append(_window(where, window, fleet, device, received))
    return Parsed(windows=tuple(rows))


def _json_object(topic: str, payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=lambda _: None)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TelemetryError(f"{topic}: payload is not UTF-8 JSON ({exc}): ignored") from exc
    if not isinstance(doc, dict):
        raise TelemetryError(f"{topic}: payload is {type(doc).__name__}, not a JSON object: ignored")
    return doc


def _same_names(where: str, doc: dict[str, Any], fleet: str, device: str, *, required: bool = True) -> None:
    for key, expected in (("fleet", fleet), ("device", device)):
        if key not in doc and not required:
            continue
        if doc.get(key) != expected:
            raise TelemetryError(f"{where}: {key} {doc.get(key)!r} in the payload does not match the topic's")


def _window(where: str, doc: dict[str, Any], fleet: str, device: str, received: float) -> WindowRow:
    window = _decode(where, doc, _Window, _MUST)
    _finite(where, window.window_start, "window_start", _MUST)
    _finite(where, window.window_end, "window_end", _MUST)
    if window.window_end < window.window_start:
        raise TelemetryError(f"{where}: window_end {window.window_end} is before window_start {window.window_start}")
    latency = window.latency_ms or _Latency()
    _finite(where, latency.p99, "latency_ms.p99", _MUST)
    total_errors = sum(window.errors.values())
    if total_errors > MAX_INT:
        raise TelemetryError(f"{where}: errors add up to more than {MAX_INT}")
    model = window.model or _Model()
    full = {"fleet": fleet, "device": device, **doc} if "fleet" not in doc or "device" not in doc else doc
    return WindowRow(
        fleet=fleet,
        device=device,
        seq=window.seq,
        window_start=window.window_start,
        window_end=window.window_end,
        received=received,
        requests=window.requests,
        errors=total_errors,
        p99=latency.p99,
        drift=window.drift,
        model_name=model.name,
        model_version=model.version,
        dropped=(window.outbox or _Outbox()).dropped,
        payload=_dumps(where, full),
    )


def _event(where: str, doc: dict[str, Any], fleet: str, device: str, received: float) -> EventRow:
    event = _decode(where, doc, _Event, _EVENT_MUST)
    _finite(where, event.time, "time", _EVENT_MUST)
    lost: list[int] = []
    if event.resent is not None:  # bounded: a device only speaks for itself, and at most a resend's worth
        for first, last in event.resent.gone:
            lost.extend(range(first, min(last, first + MAX_RESEND_WINDOWS - len(lost) - 1) + 1))
    return EventRow(
        fleet=fleet,
        device=device,
        id=event.id,
        command=event.command,
        status=event.status,
        time=event.time,
        detail=event.detail or "",
        received=received,
        payload=_dumps(where, doc),
        lost=tuple(lost),
    )


def _decode(where: str, doc: dict[str, Any], fields: type[_Fields], must: dict[str, str]) -> _Fields:
    """``doc``'s fields the store reads, by the contract's types; :class:`TelemetryError` naming the first bad one."""
    try:
        return msgspec.convert(doc, fields)
    except msgspec.ValidationError as exc:
        raise _refusal(where, doc, str(exc), must) from None


def _refusal(where: str, doc: dict[str, Any], text: str, must: dict[str, str]) -> TelemetryError:
    """The msgspec ``text`` (``Expected `int` >= 1 - at `$.seq```) as a line naming the field, its value, the rule."""
    names: list[str] = []
    rule: list[str] = []
    value: Any = doc
    for step in failed_at(text):
        if isinstance(step, str):
            names.append(step)
            rule.append(step)
            value = value.get(step) if isinstance(value, dict) else None
        elif step is ... and isinstance(value, dict):  # a value of an object: the first one that is not a count
            bad = next((k for k, v in value.items() if not _fits(v, PositiveCount)), None)
            names[-1] += f"[{bad!r}]"
            rule[-1] += "[]"
            value = value.get(bad)
    wanted = must.get(".".join(rule))
    if not names or wanted is None:
        return TelemetryError(f"{where}: {text}")
    return TelemetryError(f"{where}: {'.'.join(names)} {_short(value)} is not {wanted}")


def _fits(value: object, kind: object) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


def _finite(where: str, value: float | None, name: str, must: dict[str, str]) -> None:
    """JSON's ``1e999`` is read as infinity: no number the store can keep."""
    if value is not None and not math.isfinite(value):
        raise TelemetryError(f"{where}: {name} {_short(value)} is not {must[name]}")


def _dumps(where: str, doc: dict[str, Any]) -> str:
    try:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # 1e999 somewhere the store does not read: infinity is not JSON
        raise TelemetryError(f"{where}: a number is out of range ({exc}): ignored") from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\\ud800" escape
        raise TelemetryError(f"{where}: a string is not valid Unicode ({exc.reason}): ignored") from exc
    if "\\u0000" in text:  # PostgreSQL's text and jsonb cannot hold NUL (json.dumps escapes it so)
        raise TelemetryError(f"{where}: a string holds a NUL character: ignored")
    return text


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, (bytes, bytearray)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."  # noqa: PLR2004
