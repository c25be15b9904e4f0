"""The shell blocks of README.md and docs/*.md, read from the files each time a test asks.

A block is known by its document and the heading above it (``README.md § Quickstart``; a second block under the
same heading is ``… #2``), never by a copy of its text: the tests run whatever the docs say today.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the fences a reader would paste into a shell; every one of them must be run by a test (tests/docs/coverage.py)
SHELL_FENCES = ("bash", "sh", "shell", "console")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is and what it says."""

    doc: str  # relative to the repository root: README.md, docs/fleet.md
    heading: str  # the nearest heading above it, without its #s
    index: int  # its place among the shell blocks under that heading, from 0
    line: int  # the line of its opening fence, from 1
    text: str

    @property
    def key(self) -> str:
        """``doc § heading``, plus `` #N`` for the Nth block under one heading (N > 1)."""
        return f"{self.doc} § {self.heading}" + (f" #{self.index + 1}" if self.index else "")

    def commands(self) -> list[str]:
        """Its commands, one string each: continuation lines and multi-line quotes joined, comment lines left out.

        A backslash-newline becomes a space, as the shell reads it; a quote left open goes on to the next lines.
        """
        commands: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            pending = f"{pending}\n{raw}" if pending else raw
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # a quote still open: the command goes on
                continue
            commands.append(pending.replace(" \n", " ").strip())
            pending = ""
        assert not pending, f"{self.key}: a command never ends (an open quote or a trailing backslash): {pending!r}"
        return commands


def documents() -> list[Path]:
    """README.md and every docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The shell blocks of one Markdown file, in order."""
    doc = path.relative_to(ROOT).as_posix()
    found: list[Block] = []
    heading, fence, start, body = "", "", 0, []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fence:
            if line.startswith("```"):
                if fence in SHELL_FENCES:
                    found.append(Block(doc, heading, seen.get(heading, 0), start, "\n".join(body) + "\n"))
                    seen[heading] = seen.get(heading, 0) + 1
                fence = ""
            else:
                body.append(line)
        elif line.startswith("```"):
            fence, start, body = line[3:].strip().split(" ")[0], number, []
        elif match := re.match(r"#{1,6} (.+)", line):
            heading = match.group(1).strip()
    return found


def all_blocks() -> list[Block]:
    """Every shell block of README.md and docs/*.md."""
    return [block for path in documents() for block in blocks_of(path)]


def find(doc: str, heading: str, index: int = 0) -> Block:
    """The ``index``-th shell block under ``heading`` in ``doc``; fails the test, naming those there are, if none."""
    found = [block for block in blocks_of(ROOT / doc) if block.heading == heading and block.index == index]
    if not found:
        there = "\n".join(block.key for block in blocks_of(ROOT / doc))
        pytest.fail(f"no shell block #{index + 1} under '{heading}' in {doc}; its blocks:\n{there}")
    return found[0]


def section(doc: str, heading: str) -> str:
    """The text under ``heading`` in ``doc``, up to the next heading of the same or a higher level."""
    lines: list[str] = []
    level, fenced = 0, False
    for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
        fenced ^= line.startswith("```")
        match = None if fenced else re.match(r"(#{1,6}) (.+)", line)
        if match and level and len(match.group(1)) <= level:
            break
        if level:
            lines.append(line)
        elif match and match.group(2).strip() == heading:
            level = len(match.group(1))
    assert level, f"{doc} has no heading '{heading}'"
    return "\n".join(lines) + "\n"
