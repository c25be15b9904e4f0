"""What a collector's SQLite file holds so far, for tests that wait on it (0 or nothing before it exists)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def windows(db: Path, device: str) -> int:
    """How many of ``device``'s windows ``db`` has stored."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM telemetry WHERE device = ?", (device,)).fetchone()[0])
    except sqlite3.OperationalError:  # no tables yet
        return 0


def states(db: Path) -> set[str]:
    """The devices whose state ``db`` has stored."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {row[0] for row in conn.execute("SELECT device FROM device_state")}
    except sqlite3.OperationalError:
        return set()
