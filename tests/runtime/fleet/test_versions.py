"""Versions compared as versions: the order the downgrade check relies on."""

from __future__ import annotations

import pytest

from edgekit_runtime.fleet.versions import compare_versions


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.9.2", "1.10.0"),
        ("1.0.0", "2.0.0"),
        ("1", "1.0.1"),
        ("v1.2", "1.3"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.1", "1.0.0-rc.2"),
        ("1.0rc1", "1.0"),
        ("1.0a1", "1.0b1"),
        ("2024.05.01", "2024.11.30"),
    ],
)
def test_versions_order_as_semver_and_pep440_say(older, newer):
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0.0"), ("1.2.0+build.5", "1.2.0"), ("V3", "3.0")])
def test_the_same_version_written_otherwise_is_equal(a, b):
    assert compare_versions(a, b) == 0


@pytest.mark.parametrize("text", ["latest", "", "1..2", "x" * 200, "1.0.0 ", "-1"])
def test_what_is_not_a_version_cannot_be_compared(text):
    assert compare_versions(text, "1.0.0") is None
    assert compare_versions("1.0.0", text) is None
