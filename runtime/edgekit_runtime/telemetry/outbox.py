"""The outbox: telemetry messages stored durably in SQLite before any send, kept for a replay period once sent.

paho-mqtt keeps unacknowledged QoS 1 messages in memory only, so a broker outage, a lost network or a power
cut would lose them. Every message is appended here first (SQLite in WAL mode with ``synchronous=FULL``: the
append has reached the disk when :meth:`Outbox.append` returns), read back in order by the publisher, and
marked sent by :meth:`Outbox.ack` once the broker's PUBACK arrived. A restart resumes where it stopped.

A PUBACK only says the broker has the message: a broker that restarts without persistence, or crashes before
it saved, or a collector on a session the broker forgot, still loses it. So a sent message is kept for
``OutboxLimits.replay`` seconds more (default one day), and :meth:`Outbox.requeue` makes kept messages waiting
again when the collector asks for the sequence numbers it misses (the fleet agent's ``resend`` command). What
is no longer kept is named, so the collector can count it as lost.

Sequence numbers come from an ``AUTOINCREMENT`` key, so they keep increasing across restarts even when the
outbox was empty, and are never reused. The outbox is bounded by total payload bytes and by age; when a new
message would pass a bound, sent messages go first (their replay is cut short), then the oldest waiting ones,
whose number is added to ``dropped``, a counter that survives restarts and is itself reported, so a gap is never
silent.

A message that cannot be stored (a full disk: SQLite's "database or disk is full", any other I/O error, or a
message larger than the outbox) is lost, and counted in ``dropped`` too: in memory at first, since nothing can
be written, then on disk in the same transaction as the next message that is stored. ``dropped`` counts it from
the moment it is lost, so whatever is sent meanwhile already reports it, and it is counted once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit_runtime.errors import ConfigError, TelemetryError
from edgekit_runtime.telemetry.seq_ranges import merged, missing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    payload BLOB NOT NULL,
    sent REAL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
"""


@dataclass(frozen=True)
class OutboxLimits:
    """How much the outbox keeps while the broker is out of reach."""

    #: total payload bytes (default 64 MiB: days of 10 s windows)
    max_bytes: int = 64 << 20
    #: seconds a message may wait (default 7 days); older ones are dropped, and counted
    max_age: float = 7 * 24 * 3600.0
    #: seconds a sent message is kept for the collector to ask again (default 1 day; 0: deleted on its PUBACK)
    replay: float = 24 * 3600.0

    def __post_init__(self) -> None:
        """Refuse bounds that keep nothing."""
        if self.max_bytes < 1:
            raise ConfigError(f"outbox max_bytes {self.max_bytes} keeps nothing: use 1 or more")
        if self.max_age <= 0:
            raise ConfigError(f"outbox max_age {self.max_age} keeps nothing: use seconds > 0")
        if self.replay < 0:
            raise ConfigError(f"outbox replay {self.replay} is negative: use seconds >= 0 (0 keeps nothing sent)")


@dataclass(frozen=True)
class Requeued:
    """What :meth:`Outbox.requeue` did."""

    #: sent messages made waiting again
    requeued: int
    #: messages asked for that were waiting anyway (they go in order)
    waiting: int
    #: ``(first, last)`` ranges asked for that the outbox no longer has
    gone: list[tuple[int, int]]


@dataclass(frozen=True)
class Entry:
    """A stored message."""

    seq: int
    created: float
    payload: bytes


class Outbox:
    """A durable FIFO of messages; one process opens it at a time, and its threads may share it."""

    def __init__(
        self, path: Path, limits: OutboxLimits | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        """Open (or create) the outbox at ``path``."""
        self.path = Path(path)
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            if "sent" not in {column[1] for column in self._db.execute("PRAGMA table_info(outbox)")}:
                self._db.execute("ALTER TABLE outbox ADD COLUMN sent REAL")  # an outbox from before the replay
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE sent IS NULL"
            ).fetchone()
            kept = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE sent IS NOT NULL"
            ).fetchone()
            stored = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        except sqlite3.OperationalError as exc:  # a full disk, an I/O error, no permission: the file may be fine
            raise TelemetryError(
                f"outbox '{self.path}' cannot be opened ({exc}): free space on its disk (or let this user write "
                "there) and restart"
            ) from exc
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            raise TelemetryError(
                f"outbox '{self.path}' cannot be opened ({exc}): move the file aside and restart"
            ) from exc
        #: waiting messages and their bytes
        self._count, self._bytes = int(row[0]), int(row[1])
        #: sent messages kept for replay, and their bytes
        self._kept, self._kept_bytes = int(kept[0]), int(kept[1])
        #: the lowest ``seq`` made waiting again since the publisher last looked (see :meth:`take_rewind`)
        self._rewind: int | None = None
        #: the ``dropped`` counter as stored
        self._dropped = int(stored[0])
        #: messages lost since the last one stored (nothing could be written): stored with the next one
        self._lost = 0
        self._lock = threading.Lock()
        #: messages up to this sequence number were read to be sent: the bounds do not drop them (see pending)
        self._held = 0

    def __enter__(self) -> Outbox:  # noqa: PYI034  (typing.Self needs Python 3.11; we support 3.10)
        """Use as a context manager."""
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close."""
        self.close()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @property
    def count(self) -> int:
        """Messages waiting."""
        return self._count

    @property
    def size(self) -> int:
        """Payload bytes waiting."""
        return self._bytes

    @property
    def kept(self) -> int:
        """Sent messages kept for replay."""
        return self._kept

    @property
    def dropped(self) -> int:
        """Messages dropped to stay within the limits or lost because they could not be stored, ever.

        It survives restarts, except for the messages lost since the last one stored (:attr:`lost`), which are
        stored with the next.
        """
        with self._lock:
            return self._dropped + self._lost

    @property
    def lost(self) -> int:
        """Messages lost since the last one stored (counted in :attr:`dropped`, in memory until the next append)."""
        return self._lost

    def append(self, payload: bytes) -> int:
        """Store ``payload`` durably, then make room by dropping the oldest; returns its sequence number.

        :class:`TelemetryError` when it cannot be stored (a full disk): it is lost, and counted in :attr:`dropped`.
        """
        if len(payload) > self.limits.max_bytes:
            with self._lock:
                self._lost += 1
            raise TelemetryError(
                f"a telemetry message of {len(payload)} bytes is larger than the outbox ({self.limits.max_bytes} "
                "bytes): raise the outbox's max_bytes"
            )
        now = self._clock()
        with self._lock:
            count, size, kept, kept_bytes = self._count, self._bytes, self._kept, self._kept_bytes
            try:
                with self._transaction():
                    cursor = self._db.execute("INSERT INTO outbox (created, payload) VALUES (?, ?)", (now, payload))
                    seq = int(cursor.lastrowid or 0)
                    self._count += 1
                    self._bytes += len(payload)
                    dropped = self._enforce(now) + self._lost  # the lost ones reach the disk with this message
                    if dropped:
                        self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))
            except sqlite3.Error as exc:  # a full disk, most likely: rolled back, nothing stored
                self._count, self._bytes, self._kept, self._kept_bytes = count, size, kept, kept_bytes
                self._lost += 1
                raise TelemetryError(
                    f"outbox '{self.path}' cannot store a message ({exc}): it is lost and counted as dropped; "
                    "free space on its disk"
                ) from exc
            self._dropped += dropped
            self._lost = 0
        return seq

    def pending(self, limit: int = 100, *, after: int = 0, hold: bool = False) -> list[Entry]:
        """The oldest ``limit`` messages with a sequence number above ``after``, in order.

        ``hold``: they are being sent; until :meth:`release`, the bounds do not drop them (the outbox may exceed
        its bound until the broker acknowledges them or the connection ends), so a message that arrives is never
        also counted as dropped.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, created, payload FROM outbox WHERE seq > ? AND sent IS NULL ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            if hold and rows:
                self._held = max(self._held, int(rows[-1][0]))
        return [Entry(int(s), float(c), bytes(p)) for s, c, p in rows]

    def release(self) -> None:
        """Nothing is in flight any more (the connection ended): the bounds may drop any message again."""
        with self._lock:
            self._held = 0

    def ack(self, seqs: Iterable[int]) -> int:
        """Mark messages the broker acknowledged as sent (kept for replay, or deleted without one); how many."""
        wanted = list(seqs)
        if not wanted:
            return 0
        marks = ",".join("?" * len(wanted))
        now = self._clock()
        with self._lock:
            try:
                with self._transaction():
                    size = self._db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE seq IN ({marks})"  # noqa: S608
                        " AND sent IS NULL",
                        wanted,
                    ).fetchone()
                    if self.limits.replay > 0:
                        self._db.execute(
                            f"UPDATE outbox SET sent = ? WHERE seq IN ({marks}) AND sent IS NULL",  # noqa: S608
                            [now, *wanted],
                        )
                    else:
                        self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks}) AND sent IS NULL", wanted)  # noqa: S608
            except sqlite3.Error as exc:  # a full disk: they stay, and are sent again
                raise TelemetryError(
                    f"outbox '{self.path}' cannot mark sent messages ({exc}): they go again; free space on its disk"
                ) from exc
            self._count -= int(size[0])
            self._bytes -= int(size[1])
            if self.limits.replay > 0:
                self._kept += int(size[0])
                self._kept_bytes += int(size[1])
        return int(size[0])

    def requeue(self, ranges: Iterable[tuple[int, int]]) -> Requeued:
        """Make the kept messages in ``ranges`` (``(first, last)``, inclusive) waiting again; what was gone.

        The publisher sends them again, in order, from the lowest (:meth:`take_rewind`).
        """
        wanted = sorted({(int(first), int(last)) for first, last in ranges if first <= last})
        requeued = waiting = 0
        gone: list[tuple[int, int]] = []
        with self._lock:
            try:
                with self._transaction():
                    for first, last in wanted:
                        present = self._db.execute(
                            "SELECT seq, sent IS NULL, LENGTH(payload) FROM outbox WHERE seq BETWEEN ? AND ?"
                            " ORDER BY seq",
                            (first, last),
                        ).fetchall()
                        gone += missing(first, last, [int(seq) for seq, _, _ in present])
                        back = [(int(seq), int(size)) for seq, unsent, size in present if not unsent]
                        waiting += len(present) - len(back)
                        if back:
                            self._db.execute(
                                "UPDATE outbox SET sent = NULL WHERE seq BETWEEN ? AND ? AND sent IS NOT NULL",
                                (first, last),
                            )
                            moved = sum(size for _, size in back)
                            self._kept -= len(back)
                            self._kept_bytes -= moved
                            self._count += len(back)
                            self._bytes += moved
                            requeued += len(back)
                            low = back[0][0]
                            self._rewind = low if self._rewind is None else min(self._rewind, low)
            except sqlite3.Error as exc:
                raise TelemetryError(
                    f"outbox '{self.path}' cannot requeue messages ({exc}): free space on its disk"
                ) from exc
        return Requeued(requeued=requeued, waiting=waiting, gone=merged(gone))

    def take_rewind(self) -> int | None:
        """The lowest ``seq`` requeued since the last call (the publisher goes back to it), or ``None``."""
        with self._lock:
            rewind, self._rewind = self._rewind, None
        return rewind

    def _enforce(self, now: float) -> int:
        """Make room in the append's transaction; how many waiting messages were dropped.

        Sent messages past their replay go first, then sent ones by the byte bound, then the oldest waiting ones.
        """
        if self._kept:
            expired = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE sent IS NOT NULL AND sent < ?",
                (now - self.limits.replay,),
            ).fetchone()
            if expired[0]:
                self._db.execute("DELETE FROM outbox WHERE sent IS NOT NULL AND sent < ?", (now - self.limits.replay,))
                self._kept -= int(expired[0])
                self._kept_bytes -= int(expired[1])
        while self._kept and self._bytes + self._kept_bytes > self.limits.max_bytes:  # replay is cut short first
            seq, size = self._db.execute(
                "SELECT seq, LENGTH(payload) FROM outbox WHERE sent IS NOT NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._kept -= 1
            self._kept_bytes -= int(size)
        dropped = 0
        cutoff = now - self.limits.max_age
        while self._count > 1:
            seq, created, size = self._db.execute(
                "SELECT seq, created, LENGTH(payload) FROM outbox WHERE sent IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            if (created >= cutoff and self._bytes <= self.limits.max_bytes) or seq <= self._held:
                break
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._count -= 1
            self._bytes -= int(size)
            dropped += 1
        return dropped

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:  # SQLite has already rolled back after some errors (SQLITE_FULL)
            self.db.execute("ROLLBACK")
