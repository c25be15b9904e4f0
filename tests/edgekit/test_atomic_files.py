"""Files edgekit hands out: complete or absent, created 0666 less the umask."""

from __future__ import annotations

import os

import pytest

from edgekit.atomic_files import copy_atomic, write_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def mode(path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_and_copied_files_get_0666_less_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomic(tmp_path / "sub" / "a.bin", b"abc")
    copy_atomic(tmp_path / "sub" / "a.bin", tmp_path / "b.bin")

    assert (tmp_path / "sub" / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes() == b"abc"
    assert mode(tmp_path / "sub" / "a.bin") == mode(tmp_path / "b.bin") == expected


@pytest.mark.usefixtures("umask")
def test_replacing_a_file_gives_it_the_rule_s_mode(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o644


def test_a_failed_copy_leaves_neither_the_file_nor_a_temporary(tmp_path):
    with pytest.raises(FileNotFoundError):
        copy_atomic(tmp_path / "missing", tmp_path / "b.bin")
    assert list(tmp_path.iterdir()) == []
