"""One MQTT message from a device into the rows the collector stores.

``edgekit/{fleet}/{device}/telemetry`` carries one window (``edgekit.telemetry/1``) or a batch of them
(``edgekit.telemetry-batch/1``); ``edgekit/{fleet}/{device}/state`` carries ``edgekit.state/1``;
``edgekit/{fleet}/{device}/events`` carries one step of a command (``edgekit.event/1``). Only what the
store relies on is checked (sequence number, times, counts, the names matching the topic); everything else a
window holds is kept as it came, in ``payload``. A message that fails a check raises
:class:`~edgekit.errors.TelemetryError` as a whole, a batch included: the sender is broken, and half a batch
would hide that.

JSON's non-standard ``NaN`` and ``Infinity`` are read as ``null`` (orjson on the device writes them so), so
the stored payload is always valid JSON, which PostgreSQL's ``jsonb`` insists on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from edgekit.errors import TelemetryError
from edgekit_runtime.fleet import events

WINDOW_SCHEMA = "edgekit.telemetry/1"
BATCH_SCHEMA = "edgekit.telemetry-batch/1"
STATE_SCHEMA = "edgekit.state/1"
# the commands a device reports progress on, and the steps of a command in the order a deploy goes through them:
# the runtime's, defined once there
EVENT_SCHEMA, EVENT_COMMANDS, EVENT_STATUSES = events.EVENT_SCHEMA, events.EVENT_COMMANDS, events.EVENT_STATUSES
#: the longest command id kept (the agent makes short ones; this bounds what a broken sender can store)
MAX_ID_LENGTH = 128
#: the message kinds: the last level of the topic
KINDS = ("telemetry", "state", "events")
#: a fleet or device name: one MQTT topic level (the device checks the same)
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: the largest integer both stores keep (SQLite INTEGER, PostgreSQL bigint)
MAX_INT = 2**63 - 1


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
        status = doc.get("status")
        if not isinstance(status, str) or not status:
            raise TelemetryError(f"{topic}: status {status!r} is not a non-empty string")
        return Parsed(state=StateRow(fleet, device, status, _dumps(topic, doc), received))
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
    seq = _integer(where, doc, "seq", low=1)
    start = _number(where, doc, "window_start")
    end = _number(where, doc, "window_end")
    if end < start:
        raise TelemetryError(f"{where}: window_end {end} is before window_start {start}")
    model = _object(where, doc, "model")
    outbox = _object(where, doc, "outbox")
    latency = _object(where, doc, "latency_ms")
    errors = _object(where, doc, "errors")
    for kind, count in errors.items():
        if not _is_int(count) or not 0 <= count <= MAX_INT:
            raise TelemetryError(f"{where}: errors[{kind!r}] {_short(count)} is not a count")
    drift = doc.get("drift", False)
    if not isinstance(drift, bool):
        raise TelemetryError(f"{where}: drift {_short(drift)} is not true or false")
    p99 = latency.get("p99")
    if p99 is not None and not _is_number(p99):
        raise TelemetryError(f"{where}: latency_ms.p99 {_short(p99)} is not a number or null")
    dropped = outbox.get("dropped")
    if dropped is not None and (not _is_int(dropped) or not 0 <= dropped <= MAX_INT):
        raise TelemetryError(f"{where}: outbox.dropped {_short(dropped)} is not a count")
    total_errors = sum(errors.values())
    if total_errors > MAX_INT:
        raise TelemetryError(f"{where}: errors add up to more than {MAX_INT}")
    full = {"fleet": fleet, "device": device, **doc} if "fleet" not in doc or "device" not in doc else doc
    return WindowRow(
        fleet=fleet,
        device=device,
        seq=seq,
        window_start=start,
        window_end=end,
        received=received,
        requests=_integer(where, doc, "requests", low=0),
        errors=total_errors,
        p99=None if p99 is None else float(p99),
        drift=drift,
        model_name=_text(where, model, "model.name"),
        model_version=_text(where, model, "model.version"),
        dropped=dropped,
        payload=_dumps(where, full),
    )


def _event(where: str, doc: dict[str, Any], fleet: str, device: str, received: float) -> EventRow:
    command_id = doc.get("id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= MAX_ID_LENGTH:
        raise TelemetryError(f"{where}: id {_short(command_id)} is not a string of 1 to {MAX_ID_LENGTH} characters")
    command = doc.get("command")
    if command not in EVENT_COMMANDS:
        raise TelemetryError(f"{where}: command {_short(command)} is not one of {', '.join(EVENT_COMMANDS)}")
    status = doc.get("status")
    if status not in EVENT_STATUSES:
        raise TelemetryError(f"{where}: status {_short(status)} is not one of {', '.join(EVENT_STATUSES)}")
    sent = _number(where, doc, "time")
    detail = doc.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise TelemetryError(f"{where}: detail {_short(detail)} is not a string")
    model = _object(where, doc, "model")
    for key in ("name", "version", "sha256"):
        _text(where, model, f"model.{key}")
    return EventRow(
        fleet=fleet,
        device=device,
        id=command_id,
        command=str(command),
        status=str(status),
        time=sent,
        detail=detail or "",
        received=received,
        payload=_dumps(where, doc),
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(where: str, doc: dict[str, Any], key: str, *, low: int) -> int:
    value = doc.get(key)
    if not _is_int(value) or not low <= value <= MAX_INT:
        raise TelemetryError(f"{where}: {key} {_short(value)} is not an integer from {low} to {MAX_INT}")
    return int(value)


def _number(where: str, doc: dict[str, Any], key: str) -> float:
    value = doc.get(key)
    if not _is_number(value):
        raise TelemetryError(f"{where}: {key} {_short(value)} is not a number (Unix seconds)")
    return float(value)


def _object(where: str, doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc[key]`` when it is an object, ``{}`` when it is missing or null."""
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TelemetryError(f"{where}: {key} {_short(value)} is not a JSON object")
    return value


def _text(where: str, doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name.rsplit(".", 1)[-1])
    if value is not None and not isinstance(value, str):
        raise TelemetryError(f"{where}: {name} {_short(value)} is not a string")
    return value


def _dumps(where: str, doc: dict[str, Any]) -> str:
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
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
