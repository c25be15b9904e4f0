"""What the SQLite and PostgreSQL stores share: the :class:`Store` protocol and its results, and the SQL.

Both stores run the same statements, apart from the parameter style (``?`` here, ``%s`` in PostgreSQL) and the
payload's column type (``jsonb`` in PostgreSQL). A module of its own so that each store needs nothing from
:mod:`edgekit.telemetry.store`, which opens one by URL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from edgekit.telemetry.latency import NO_REQUESTS, P99_MINUTES, shown

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from edgekit.telemetry.gaps import Gap, Refusal
    from edgekit.telemetry.latency import Percentile
    from edgekit.telemetry.messages import EventRow, StateRow, WindowRow
    from edgekit.telemetry.queries import CommandStep, SeriesPoint

WINDOW_COLUMNS = (
    "fleet",
    "device",
    "seq",
    "window_start",
    "window_end",
    "received",
    "requests",
    "errors",
    "p99",
    "drift",
    "model_name",
    "model_version",
    "dropped",
    "payload",
)
STATE_COLUMNS = ("fleet", "device", "status", "payload", "updated")
EVENT_COLUMNS = ("fleet", "device", "id", "command", "status", "time", "detail", "received", "payload")
_S = TypeVar("_S", bound="StoreContext")

_TABLES = """
CREATE TABLE IF NOT EXISTS telemetry (
    fleet TEXT NOT NULL,
    device TEXT NOT NULL,
    seq BIGINT NOT NULL,
    window_start {real} NOT NULL,
    window_end {real} NOT NULL,
    received {real} NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    p99 {real},
    drift BOOLEAN NOT NULL,
    model_name TEXT,
    model_version TEXT,
    dropped BIGINT,
    payload {json} NOT NULL,
    PRIMARY KEY (fleet, device, seq)
);
CREATE INDEX IF NOT EXISTS telemetry_window_end ON telemetry (fleet, device, window_end);
CREATE TABLE IF NOT EXISTS device_state (
    fleet TEXT NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL,
    payload {json} NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (fleet, device)
);
CREATE TABLE IF NOT EXISTS events (
    fleet TEXT NOT NULL,
    device TEXT NOT NULL,
    id TEXT NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL,
    time {real} NOT NULL,
    detail TEXT NOT NULL,
    received {real} NOT NULL,
    payload {json} NOT NULL,
    PRIMARY KEY (fleet, device, id, status)
);
CREATE INDEX IF NOT EXISTS events_command ON events (fleet, id, time);
CREATE TABLE IF NOT EXISTS telemetry_lost (
    fleet TEXT NOT NULL,
    device TEXT NOT NULL,
    seq BIGINT NOT NULL,
    reported {real} NOT NULL,
    PRIMARY KEY (fleet, device, seq)
);
"""

_SUMMARY = """
WITH devices AS (
    SELECT fleet, device FROM telemetry UNION SELECT fleet, device FROM device_state
), totals AS (
    SELECT fleet, device, COUNT(*) AS windows, SUM(requests) AS requests, SUM(errors) AS errors,
           MAX(seq) - MIN(seq) + 1 - COUNT(*) AS gaps, MAX(dropped) AS dropped, MAX(window_end) AS last_seen,
           MIN(seq) AS first_seq, MAX(seq) AS last_seq
    FROM telemetry GROUP BY fleet, device
), lost AS (
    SELECT l.fleet, l.device, COUNT(*) AS lost FROM telemetry_lost l
    JOIN totals t ON t.fleet = l.fleet AND t.device = l.device AND l.seq BETWEEN t.first_seq AND t.last_seq
    WHERE NOT EXISTS (SELECT 1 FROM telemetry w WHERE w.fleet = l.fleet AND w.device = l.device AND w.seq = l.seq)
    GROUP BY l.fleet, l.device
), newest AS (
    SELECT fleet, device, model_name, model_version, drift,
           ROW_NUMBER() OVER (PARTITION BY fleet, device ORDER BY window_end DESC, seq DESC) AS age
    FROM telemetry
)
SELECT d.fleet, d.device, s.status, n.model_name, n.model_version, t.windows, t.requests, t.errors,
       n.drift, t.last_seen, t.gaps - COALESCE(l.lost, 0), t.dropped, COALESCE(l.lost, 0)
FROM devices d
LEFT JOIN totals t ON t.fleet = d.fleet AND t.device = d.device
LEFT JOIN lost l ON l.fleet = d.fleet AND l.device = d.device
LEFT JOIN newest n ON n.fleet = d.fleet AND n.device = d.device AND n.age = 1
LEFT JOIN device_state s ON s.fleet = d.fleet AND s.device = d.device
ORDER BY d.fleet, d.device
"""


#: the idempotent insert of one window (``?`` markers; PostgreSQL's are ``%s``)
INSERT_WINDOW = (
    "INSERT INTO telemetry (fleet, device, seq, window_start, window_end, received, requests, errors, p99, drift,"
    " model_name, model_version, dropped, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (fleet, device, seq) DO NOTHING"
)
#: the insert-or-replace of one device's state
UPSERT_STATE = (
    "INSERT INTO device_state (fleet, device, status, payload, updated) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (fleet, device) DO UPDATE SET"
    " status = excluded.status, payload = excluded.payload, updated = excluded.updated"
)
#: the idempotent insert of one event: a step reported twice (a redelivery) is kept once
INSERT_EVENT = (
    "INSERT INTO events (fleet, device, id, command, status, time, detail, received, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fleet, device, id, status) DO NOTHING"
)


#: the idempotent insert of one window the device said it no longer has (a resend's ``gone``)
INSERT_LOST = (
    "INSERT INTO telemetry_lost (fleet, device, seq, reported) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (fleet, device, seq) DO NOTHING"
)


@dataclass(frozen=True)
class Added:
    """What one :meth:`Store.add_windows` did."""

    #: windows that were not stored before
    new: int
    #: windows already stored (the same ``(fleet, device, seq)``), left as they were
    duplicates: int
    #: states written
    states: int = 0
    #: events that were not stored before
    events: int = 0
    #: events already stored (the same ``(fleet, device, id, status)``), left as they were
    duplicate_events: int = 0

    @classmethod
    def counted(
        cls,
        windows: Sequence[WindowRow],
        states: Sequence[StateRow],
        events: Sequence[EventRow],
        *,
        new: int,
        new_events: int,
    ) -> Added:
        """What a batch did, from how many of its windows and events were new."""
        return cls(
            new=new,
            duplicates=len(windows) - new,
            states=len(states),
            events=new_events,
            duplicate_events=len(events) - new_events,
        )


@dataclass(frozen=True)
class DeviceSummary:
    """One device, as ``edgekit telemetry show`` prints it."""

    fleet: str
    device: str
    #: from the last state message (``online``, ``offline``), ``None`` before one arrived
    status: str | None
    model_name: str | None
    model_version: str | None
    windows: int
    requests: int
    errors: int
    #: latency p99 (ms) of the windows that ended in the ``p99_minutes`` up to the newest one: their histograms
    #: merged, interpolated within the bucket (:mod:`edgekit.telemetry.latency`); ``None`` without requests
    p99: float | None
    #: whether the newest window saw drift
    drift: bool | None
    #: ``window_end`` of the newest window (Unix seconds)
    last_seen: float | None
    #: windows missing between the lowest and highest ``seq`` stored, that the collector may still get (repair)
    gaps: int
    #: the highest ``outbox.dropped`` the device reported
    dropped: int | None
    #: windows missing that the device said it no longer has (its answer to a resend): they will not come
    lost: int = 0
    #: how many minutes of windows, up to the newest one, ``p99`` covers
    p99_minutes: float = P99_MINUTES
    #: requests in those windows (0: the device was idle)
    p99_requests: int = 0
    #: the highest latency bucket bound (ms) when the p99 lies above it, in the unbounded bucket (``p99`` is None)
    p99_above: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed requests over all requests (``None`` without requests)."""
        return self.errors / self.requests if self.requests else None

    @property
    def p99_text(self) -> str:
        """``p99`` as the tables print it: ms, ``> 10000`` above every bucket, ``idle`` without requests."""
        return shown(self.p99, above=self.p99_above, requests=self.p99_requests, windows=self.windows)

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON values."""
        return {**asdict(self), "error_rate": self.error_rate}


class Store(Protocol):
    """Somewhere to keep windows and device states."""

    #: where it is, without a password (for logs)
    where: str

    def add_windows(
        self, windows: Sequence[WindowRow], states: Sequence[StateRow] = (), events: Sequence[EventRow] = ()
    ) -> Added:
        """Insert ``windows`` and ``events`` (skipping ones already there) and write ``states``, in one transaction."""
        ...

    def summary(self, *, p99_minutes: float = P99_MINUTES) -> list[DeviceSummary]:
        """One line per device that sent a window or a state (``p99_minutes``: what its p99 covers)."""
        ...

    def series(self, device: str, *, since: float, fleet: str | None = None) -> list[SeriesPoint]:
        """The device's windows that ended at ``since`` or later, oldest first (``fleet``: only that fleet's)."""
        ...

    def latest_events(self, *, commands: int = 20) -> list[CommandStep]:
        """The latest step of each device in each of the ``commands`` most recent command ids."""
        ...

    def gaps(self, since: float) -> list[Gap]:
        """The ``seq`` gaps among windows received since ``since``, less what devices said is lost."""
        ...

    def resend_refusals(self, since: float) -> list[Refusal]:
        """The devices that refused a resend since ``since``."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class StoreContext:
    """What both stores do alike: the reads that are the same SQL, and the context manager.

    ``with open_store(url) as store:`` closes it at the end.
    """

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of ``sql`` (``?`` markers) with ``params``."""
        raise NotImplementedError

    #: the SQL expression for a window's ``payload.latency_ms`` (the table is ``t``)
    _latency_sql = "t.payload->'latency_ms'"

    def summary(self, *, p99_minutes: float = P99_MINUTES) -> list[DeviceSummary]:
        """One line per device that sent a window or a state (``p99_minutes``: what its p99 covers)."""
        from edgekit.telemetry.queries import recent_latency, recent_latency_query

        rows = self._read(_SUMMARY, ())
        sql, params = recent_latency_query(self._latency_sql, minutes=p99_minutes)
        return summaries(rows, recent_latency(self._read(sql, params)), p99_minutes)

    def series(self, device: str, *, since: float, fleet: str | None = None) -> list[SeriesPoint]:
        """The device's windows that ended at ``since`` or later, oldest first (``fleet``: only that fleet's)."""
        from edgekit.telemetry.queries import series_points, series_query

        sql, params = series_query(device, since=since, fleet=fleet)
        return series_points(self._read(sql, params))

    def gaps(self, since: float) -> list[Gap]:
        """The ``seq`` gaps among windows received since ``since``, less what devices said is lost."""
        from edgekit.telemetry.gaps import gaps

        return gaps(self._read, since)

    def resend_refusals(self, since: float) -> list[Refusal]:
        """The devices that refused a resend since ``since``."""
        from edgekit.telemetry.gaps import refusals

        return refusals(self._read, since)

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def __enter__(self: _S) -> _S:  # noqa: PYI019  (typing.Self needs Python 3.11; we support 3.10)
        """Use as a context manager."""
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close the store."""
        self.close()


def safe_url(url: str) -> str:
    """``url`` without its password (one that is not a URL at all is shown up to its ``@``, if any)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL": nothing can be parsed, so no login is shown
        scheme, _, rest = url.rpartition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}" if scheme else url.rpartition("@")[2]
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def summaries(
    rows: Sequence[Sequence[Any]], latency: dict[tuple[str, str], tuple[int, Percentile]], p99_minutes: float
) -> list[DeviceSummary]:
    """Rows of the summary query, and :func:`~edgekit.telemetry.queries.recent_latency`, as summaries."""
    found = []
    for fleet, device, status, name, version, windows, requests, errors, drift, last, gaps, dropped, lost in rows:
        recent, p99 = latency.get((fleet, device), (0, NO_REQUESTS))  # missing: no requests in the span
        found.append(
            DeviceSummary(
                fleet=fleet,
                device=device,
                status=status,
                model_name=name,
                model_version=version,
                windows=int(windows or 0),
                requests=int(requests or 0),
                errors=int(errors or 0),
                p99=p99.ms,
                drift=None if drift is None else bool(drift),
                last_seen=None if last is None else float(last),
                gaps=int(gaps or 0),
                dropped=None if dropped is None else int(dropped),
                lost=int(lost or 0),
                p99_minutes=p99_minutes,
                p99_requests=recent,
                p99_above=p99.above_ms,
            )
        )
    return found


def window_values(windows: Sequence[WindowRow]) -> list[tuple[Any, ...]]:
    """The parameters of :data:`INSERT_WINDOW` for each window."""
    return [tuple(getattr(w, column) for column in WINDOW_COLUMNS) for w in windows]


def state_values(states: Sequence[StateRow]) -> list[tuple[Any, ...]]:
    """The parameters of :data:`UPSERT_STATE` for each state."""
    return [tuple(getattr(s, column) for column in STATE_COLUMNS) for s in states]


def event_values(events: Sequence[EventRow]) -> list[tuple[Any, ...]]:
    """The parameters of :data:`INSERT_EVENT` for each event."""
    return [tuple(getattr(e, column) for column in EVENT_COLUMNS) for e in events]


def lost_values(events: Sequence[EventRow]) -> list[tuple[Any, ...]]:
    """The parameters of :data:`INSERT_LOST` for each ``seq`` a resend's event says is gone."""
    return [(e.fleet, e.device, seq, e.received) for e in events for seq in e.lost]


def tables_sql(real: str, json: str) -> str:
    """The ``CREATE TABLE`` statements with the engine's type names."""
    return _TABLES.format(real=real, json=json)
