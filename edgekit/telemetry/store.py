"""Where the collector keeps windows and events: SQLite or PostgreSQL, chosen by URL, idempotent on their keys.

:func:`open_store` takes a plain path or ``sqlite:///PATH`` (SQLite in WAL mode with ``synchronous=FULL``: a
commit has reached the disk before the collector acknowledges the messages in it), or
``postgresql://USER@HOST:PORT/DB`` (psycopg 3, installed with ``pip install 'edgekit[postgres]'``). A window is
inserted with ``ON CONFLICT DO NOTHING``, so a window sent twice is stored once; :meth:`Store.add_windows` says how many
rows were new and how many were already there. Events (``edgekit/{fleet}/{device}/events``) go the same way into
``events``, one row per ``(fleet, device, id, status)``. A batch of windows, states and events is one transaction.
The dashboard's reads (time series, the latest step of each command) are in :mod:`edgekit.telemetry.queries`.

Both stores share the SQL and the :class:`Store` protocol (:mod:`edgekit.telemetry.store_base`, whose names are
importable from here too), apart from the parameter style and the payload's column type (``jsonb`` in
PostgreSQL). Times are Unix seconds (``double precision``/``REAL``); PostgreSQL's ``to_timestamp()`` reads them.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigError, TelemetryError
from edgekit.telemetry.store_base import (
    INSERT_EVENT,
    INSERT_LOST,
    INSERT_WINDOW,
    UPSERT_STATE,
    Added,
    DeviceSummary,
    Store,
    StoreContext,
    event_values,
    lost_values,
    safe_url,
    state_values,
    tables_sql,
    window_values,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit.telemetry.messages import EventRow, StateRow, WindowRow
    from edgekit.telemetry.postgres import PostgresStore
    from edgekit.telemetry.queries import CommandStep

__all__ = ["Added", "DeviceSummary", "SQLiteStore", "Store", "open_store"]


def open_store(url: str | Path, *, create: bool = True) -> SQLiteStore | PostgresStore:
    """The store at ``url``: a path or ``sqlite:///PATH`` (SQLite), or ``postgresql://...``.

    With ``create=False`` (``show``) a missing SQLite file is an error instead of a new, empty database.
    """
    text = str(url)
    if "://" not in text:
        return SQLiteStore(Path(text), create=create)
    scheme = text.split("://", 1)[0].lower()
    if scheme == "sqlite":
        path = text.split("://", 1)[1]
        if not path.startswith("/") or len(path) < 2:  # noqa: PLR2004
            raise ConfigError(f"--db '{text}' names no file: write sqlite:///relative.db or sqlite:////abs/path.db")
        return SQLiteStore(Path(path[1:]), create=create)
    if scheme in ("postgresql", "postgres"):
        from edgekit.telemetry.postgres import PostgresStore

        return PostgresStore(text, create=create)
    raise ConfigError(
        f"--db '{safe_url(text)}' has an unknown scheme '{scheme}': give a file path, sqlite:///PATH or postgresql://..."
    )


class SQLiteStore(StoreContext):
    """Windows in a SQLite file (WAL, ``synchronous=FULL``); safe to share between threads."""

    #: json_extract, not ``->``, which SQLite has only from 3.38 (Ubuntu 22.04's Python has 3.37)
    _latency_sql = "json_extract(t.payload, '$.latency_ms')"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (or, with ``create``, create) the database at ``path``."""
        self.path = path
        self.where = str(path)
        if not create and not path.is_file():
            raise TelemetryError(f"no telemetry database at '{path}': give the --db that collect wrote to")
        self._lock = threading.Lock()
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise TelemetryError(f"cannot open the SQLite database '{path}': {exc}: check the path") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if create:
                self._db.executescript(tables_sql("REAL", "TEXT"))
        except sqlite3.Error as exc:
            self._db.close()
            raise TelemetryError(f"'{path}' is not a usable SQLite database: {exc}: give another --db") from exc

    def add_windows(
        self, windows: Sequence[WindowRow], states: Sequence[StateRow] = (), events: Sequence[EventRow] = ()
    ) -> Added:
        """Insert ``windows`` and ``events`` (skipping ones already there) and write ``states``, in one transaction."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    new = self._db.executemany(INSERT_WINDOW, window_values(windows)).rowcount
                    self._db.executemany(UPSERT_STATE, state_values(states))
                    new_events = self._db.executemany(INSERT_EVENT, event_values(events)).rowcount
                    self._db.executemany(INSERT_LOST, lost_values(events))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise TelemetryError(f"cannot store telemetry in '{self.path}': {exc}") from exc
        return Added.counted(windows, states, events, new=max(new, 0), new_events=max(new_events, 0))

    def latest_events(self, *, commands: int = 20) -> list[CommandStep]:
        """The latest step of each device in each of the ``commands`` most recent command ids."""
        from edgekit.telemetry.queries import LATEST_EVENTS, command_steps

        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'", ()):
            return []  # a database an older collector wrote: no command has reported yet
        return command_steps(self._read(LATEST_EVENTS, (commands,)))

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise TelemetryError(f"cannot read telemetry from '{self.path}': {exc}: is it a collect --db?") from exc

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
