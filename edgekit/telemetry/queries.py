"""What the fleet views read from a store: windows over time, recent latency histograms, each command's progress.

The SQL is standard and runs on both stores (``?`` markers; PostgreSQL's store turns them into ``%s``). Rows
come back as plain dataclasses with JSON-ready fields (:meth:`SeriesPoint.to_json`, :meth:`CommandStep.to_json`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgekit.telemetry.latency import Histogram, Percentile, check_minutes, histogram, percentile
from edgekit_runtime.contract.statuses import EVENT_STATUSES

if TYPE_CHECKING:
    from collections.abc import Sequence

#: the most windows one series returns (the newest ones): a day of 10 s windows is 8,640
MAX_POINTS = 10_000

_SERIES = """
SELECT window_start, window_end, requests, errors, p99, drift FROM (
    SELECT window_start, window_end, requests, errors, p99, drift, seq FROM telemetry
    WHERE device = ? AND window_end >= ?{fleet}
    ORDER BY window_end DESC, seq DESC LIMIT ?
) newest ORDER BY window_end, seq
"""

#: each device's windows with requests that ended in the given seconds up to its newest window; ``{latency}``
#: is the store's expression for ``payload``'s ``latency_ms`` (``t.payload->'latency_ms'``)
_RECENT_LATENCY = """
SELECT t.fleet, t.device, t.requests, {latency} FROM telemetry t
JOIN (SELECT fleet, device, MAX(window_end) AS last FROM telemetry GROUP BY fleet, device) n
    ON n.fleet = t.fleet AND n.device = t.device
WHERE t.requests > 0 AND t.window_end > n.last - ?
"""

#: a step's place in a command, for steps sent at the same time: the later one is the latest
_STEP = "CASE status " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(EVENT_STATUSES)) + " ELSE -1 END"

#: the latest step of each device in each of the most recent command ids (the parameter: how many ids)
LATEST_EVENTS = f"""
WITH ranked AS (
    SELECT fleet, device, id, command, status, time, detail, payload,
           ROW_NUMBER() OVER (PARTITION BY fleet, device, id ORDER BY time DESC, received DESC, {_STEP} DESC) AS age
    FROM events
), recent AS (
    SELECT fleet, id, MAX(time) AS last FROM events GROUP BY fleet, id ORDER BY last DESC LIMIT ?
)
SELECT r.fleet, r.device, r.id, r.command, r.status, r.time, r.detail, r.payload
FROM ranked r JOIN recent c ON c.fleet = r.fleet AND c.id = r.id
WHERE r.age = 1
ORDER BY c.last DESC, r.fleet, r.id, r.device
"""  # noqa: S608 (the CASE holds only the constant EVENT_STATUSES)


@dataclass(frozen=True)
class SeriesPoint:
    """One window of one device, as a point of the dashboard's charts."""

    #: Unix seconds
    window_end: float
    #: requests over the window's length (``None`` for a window of no length)
    requests_per_s: float | None
    #: latency p99 in ms (``None`` for an empty window)
    p99: float | None
    #: failed requests over all requests (``None`` without requests)
    error_rate: float | None
    drift: bool

    def to_json(self) -> dict[str, Any]:
        """The point as plain JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class CommandStep:
    """Where one command got to on one device: its latest event."""

    fleet: str
    device: str
    #: the command's id
    id: str
    command: str
    status: str
    #: Unix seconds when the device sent it
    time: float
    detail: str
    #: ``{"name", "version", "sha256"}`` of the model the command is about, when the event names one
    model: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The step as plain JSON values."""
        return asdict(self)


def series_query(device: str, *, since: float, fleet: str | None = None) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of a device's windows that ended at ``since`` or later."""
    if fleet is None:
        return _SERIES.format(fleet=""), (device, since, MAX_POINTS)
    return _SERIES.format(fleet=" AND fleet = ?"), (device, since, fleet, MAX_POINTS)


def series_points(rows: Sequence[Sequence[Any]]) -> list[SeriesPoint]:
    """Rows of :func:`series_query` as points."""
    points = []
    for start, end, requests, errors, p99, drift in rows:
        length = float(end) - float(start)
        points.append(
            SeriesPoint(
                window_end=float(end),
                requests_per_s=int(requests) / length if length > 0 else None,
                p99=None if p99 is None else float(p99),
                error_rate=int(errors) / int(requests) if requests else None,
                drift=bool(drift),
            )
        )
    return points


def recent_latency_query(latency: str, *, minutes: float) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of each device's windows that ended in the ``minutes`` up to its newest one.

    ``latency`` is the store's SQL expression for the windows' ``latency_ms`` (the table is ``t``).
    """
    return _RECENT_LATENCY.format(latency=latency), (60.0 * check_minutes(minutes),)


def recent_latency(rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str], tuple[int, Percentile]]:
    """Rows of :func:`recent_latency_query` as, per ``(fleet, device)``, its requests and their p99."""
    requests: dict[tuple[str, str], int] = {}
    histograms: dict[tuple[str, str], list[Histogram]] = {}
    for fleet, device, count, latency in rows:
        key = (fleet, device)
        requests[key] = requests.get(key, 0) + int(count)
        found = histogram(latency)
        if found is not None:
            histograms.setdefault(key, []).append(found)
    return {key: (count, percentile(histograms.get(key, ()))) for key, count in requests.items()}


def command_steps(rows: Sequence[Sequence[Any]]) -> list[CommandStep]:
    """Rows of :data:`LATEST_EVENTS` as steps (``payload`` is text from SQLite, a dict from PostgreSQL)."""
    steps = []
    for fleet, device, command_id, command, status, sent, detail, payload in rows:
        doc = json.loads(payload) if isinstance(payload, str) else payload
        model = doc.get("model") if isinstance(doc, dict) else None
        steps.append(
            CommandStep(
                fleet=fleet,
                device=device,
                id=command_id,
                command=command,
                status=status,
                time=float(sent),
                detail=detail,
                model=model if isinstance(model, dict) else None,
            )
        )
    return steps
