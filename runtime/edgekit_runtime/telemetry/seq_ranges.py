"""Ranges of telemetry sequence numbers, ``(first, last)`` inclusive: what is missing, joined, counted.

The device's outbox says which asked-for windows it no longer keeps; the collector finds the gaps in what it
stored and asks for them. Both speak in these ranges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


def missing(first: int, last: int, present: Iterable[int]) -> list[tuple[int, int]]:
    """The ranges of ``first..last`` that ``present`` (ascending) lacks."""
    gaps: list[tuple[int, int]] = []
    expected = first
    for seq in present:
        if seq < expected:
            continue
        if seq > last:
            break
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = seq + 1
    if expected <= last:
        gaps.append((expected, last))
    return gaps


def merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ranges, touching or overlapping ones joined."""
    joined: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if joined and first <= joined[-1][1] + 1:
            joined[-1] = (joined[-1][0], max(joined[-1][1], last))
        else:
            joined.append((first, last))
    return joined


def size(ranges: Sequence[tuple[int, int]]) -> int:
    """How many sequence numbers ``ranges`` hold (after :func:`merged`)."""
    return sum(last - first + 1 for first, last in merged(ranges))


def capped(ranges: Sequence[tuple[int, int]], most: int, count: int) -> list[tuple[int, int]]:
    """The lowest ranges holding at most ``most`` numbers and ``count`` ranges, the last one cut to fit."""
    kept: list[tuple[int, int]] = []
    room = most
    for first, last in merged(ranges):
        if room <= 0 or len(kept) >= count:
            break
        kept.append((first, min(last, first + room - 1)))
        room -= kept[-1][1] - first + 1
    return kept
