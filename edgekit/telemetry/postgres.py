"""The PostgreSQL store (psycopg 3, imported only when a ``postgresql://`` URL is opened).

The same tables as SQLite, with ``payload`` as ``jsonb`` and times as ``double precision`` Unix seconds. The
tables are created under a transaction-scoped advisory lock, so collectors starting together do not race on
``CREATE TABLE IF NOT EXISTS``. A connection lost between batches (a server restart) is opened again on the
next write; the collector retries a failed write, and acknowledges nothing it did not commit.

Give the schema with libpq's options: ``postgresql://USER@HOST/DB?options=-csearch_path%3Dtelemetry``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigError, MissingExtraError, TelemetryError
from edgekit.telemetry.queries import LATEST_EVENTS, command_steps
from edgekit.telemetry.store_base import (
    INSERT_EVENT,
    INSERT_LOST,
    INSERT_WINDOW,
    UPSERT_STATE,
    Added,
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

    import psycopg

    from edgekit.telemetry.messages import EventRow, StateRow, WindowRow
    from edgekit.telemetry.queries import CommandStep

#: the advisory lock collectors take while creating the tables ("edgekit" in ASCII, as a number)
_CREATE_LOCK = 0x6564_6765_6B69_74
_CONNECT_TIMEOUT_S = 10


class PostgresStore(StoreContext):
    """Windows in PostgreSQL; one connection, shared between threads under a lock."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """Connect to ``url`` and, with ``create``, make the tables if they are missing."""
        try:
            import psycopg
        except ImportError as exc:
            raise MissingExtraError("the PostgreSQL store", "postgres", "psycopg") from exc
        self._psycopg = psycopg
        self.url = url
        self.where = safe_url(url)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            conn = self._connection()
            if create:
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                        for statement in tables_sql("DOUBLE PRECISION", "JSONB").split(";"):
                            if statement.strip():
                                conn.execute(statement)
                except psycopg.Error as exc:
                    self._drop()
                    raise TelemetryError(f"cannot create the telemetry tables in {self.where}: {_line(exc)}") from exc

    def _connection(self) -> psycopg.Connection[Any]:
        psycopg = self._psycopg
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"--db '{self.where}' is not a PostgreSQL URL libpq accepts: {_line(exc)}") from exc
        except psycopg.Error as exc:
            raise TelemetryError(
                f"cannot connect to PostgreSQL at {self.where}: {_line(exc)}: check that it runs, and the URL's"
                " user, password and database"
            ) from exc
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def add_windows(
        self, windows: Sequence[WindowRow], states: Sequence[StateRow] = (), events: Sequence[EventRow] = ()
    ) -> Added:
        """Insert ``windows`` and ``events`` (skipping ones already there) and write ``states``, in one transaction."""
        psycopg = self._psycopg
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cursor:
                    new = new_events = 0
                    if windows:
                        cursor.executemany(INSERT_WINDOW.replace("?", "%s"), window_values(windows))
                        new = max(cursor.rowcount, 0)
                    if states:
                        cursor.executemany(UPSERT_STATE.replace("?", "%s"), state_values(states))
                    if events:
                        cursor.executemany(INSERT_EVENT.replace("?", "%s"), event_values(events))
                        new_events = max(cursor.rowcount, 0)
                        if lost := lost_values(events):
                            cursor.executemany(INSERT_LOST.replace("?", "%s"), lost)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    self._drop()
                raise TelemetryError(f"cannot store telemetry in {self.where}: {_line(exc)}") from exc
        return Added.counted(windows, states, events, new=new, new_events=new_events)

    def latest_events(self, *, commands: int = 20) -> list[CommandStep]:
        """The latest step of each device in each of the ``commands`` most recent command ids."""
        if self._read("SELECT to_regclass('events') IS NULL", ())[0][0]:
            return []  # tables an older collector made: no command has reported yet
        return command_steps(self._read(LATEST_EVENTS, (commands,)))

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        psycopg = self._psycopg
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql.replace("?", "%s"), params or None).fetchall()
            except psycopg.errors.UndefinedTable as exc:
                raise TelemetryError(
                    f"no telemetry tables in {self.where}: give the --db that collect wrote to"
                ) from exc
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    self._drop()
                raise TelemetryError(f"cannot read telemetry from {self.where}: {_line(exc)}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._drop()


def _line(exc: BaseException) -> str:
    """The first line of a psycopg error (libpq's messages run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
