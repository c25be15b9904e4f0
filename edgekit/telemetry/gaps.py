"""Gaps in what the collector stored: the ``seq`` ranges of a device it has not got, less what the device said is lost.

A device numbers its windows 1, 2, 3, ... and never reuses a number, so a window the store lacks between two it has
is a gap: lost between the device and the collector (a broker that restarted without persistence, a collector
session the broker forgot), or dropped by the device's own bounds. The collector's repair
(:mod:`edgekit.telemetry.collector.repair`) asks the device to send gaps again; the device's answer names what it no
longer keeps, which is stored in ``telemetry_lost`` and is no gap any more but a loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit_runtime.telemetry.seq_ranges import missing

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    Read = Callable[[str, Sequence[Any]], list[Any]]

#: each device's windows received since ``?``, with the ``seq`` before each; a jump of more than one is a gap
_GAPS = """
SELECT fleet, device, prev + 1, seq - 1, received FROM (
    SELECT fleet, device, seq, received, LAG(seq) OVER (PARTITION BY fleet, device ORDER BY seq) AS prev
    FROM telemetry WHERE received >= ?
) w WHERE seq - prev > 1 ORDER BY fleet, device, seq
"""
_LOST_IN = "SELECT seq FROM telemetry_lost WHERE fleet = ? AND device = ? AND seq BETWEEN ? AND ? ORDER BY seq"
_REFUSED = """
SELECT fleet, device, MAX(received), MAX(detail) FROM events
WHERE command = 'resend' AND status = 'refused' AND received >= ? GROUP BY fleet, device
"""


@dataclass(frozen=True)
class Gap:
    """Windows ``first`` to ``last`` of a device that the store lacks, and the device has not called lost."""

    fleet: str
    device: str
    first: int
    last: int
    #: when the window after the gap was received (Unix seconds): a gap only just seen may still fill by itself
    noticed: float

    @property
    def windows(self) -> int:
        """How many windows are missing."""
        return self.last - self.first + 1


@dataclass(frozen=True)
class Refusal:
    """A device that refused a resend (its newest refusal)."""

    fleet: str
    device: str
    received: float
    detail: str


def gaps(read: Read, since: float) -> list[Gap]:
    """The gaps among windows received since ``since`` (Unix seconds), less the ``seq`` stored as lost."""
    found = []
    for fleet, device, first, last, noticed in read(_GAPS, (since,)):
        lost = [int(row[0]) for row in read(_LOST_IN, (fleet, device, int(first), int(last)))]
        found += [Gap(fleet, device, low, high, float(noticed)) for low, high in missing(int(first), int(last), lost)]
    return found


def refusals(read: Read, since: float) -> list[Refusal]:
    """The devices that refused a resend since ``since``."""
    return [Refusal(f, d, float(r), str(t)) for f, d, r, t in read(_REFUSED, (since,))]
