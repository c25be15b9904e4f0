"""Sequence-number ranges: what is missing, joined, counted and capped."""

from __future__ import annotations

from edgekit_runtime.telemetry.seq_ranges import capped, merged, missing, size


def test_missing_names_the_holes_and_the_ends():
    assert missing(1, 10, [1, 2, 5, 10]) == [(3, 4), (6, 9)]
    assert missing(3, 5, []) == [(3, 5)]
    assert missing(3, 5, [1, 3, 4, 5, 9]) == []
    assert missing(3, 6, [4]) == [(3, 3), (5, 6)]


def test_merged_joins_touching_and_overlapping_ranges():
    assert merged([(5, 6), (1, 2), (3, 3), (8, 9), (9, 12)]) == [(1, 3), (5, 6), (8, 12)]
    assert size([(1, 3), (2, 5)]) == 5


def test_capped_keeps_the_lowest_within_both_limits():
    assert capped([(1, 5), (10, 20)], 8, 10) == [(1, 5), (10, 12)]
    assert capped([(1, 1), (3, 3), (5, 5)], 100, 2) == [(1, 1), (3, 3)]
