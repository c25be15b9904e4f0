"""The runtime command's argument types: each parses one flag's text or says, in argparse's way, what it must be."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

_Number = TypeVar("_Number", int, float)


def parsed(text: str, kind: Callable[[str], _Number], what: str) -> _Number:
    """``kind(text)``, or argparse's complaint that ``text`` is not ``what``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None


def count(text: str) -> int:
    """A whole number >= 1."""
    value = parsed(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count: use 1 or more")
    return value


def port(text: str) -> int:
    """A TCP port, or 0 for a free one."""
    value = parsed(text, int, "a port number")
    if not 0 <= value <= 65535:  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port: use 1 to 65535, or 0 for a free one")
    return value


def milliseconds(text: str) -> float:
    """0 to 10000 milliseconds."""
    value = parsed(text, float, "a number of milliseconds")
    if not 0 <= value <= 10_000:  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 0 to 10000 milliseconds")
    return value


def seconds(text: str) -> float:
    """0.05 to 86400 seconds (a telemetry window)."""
    value = parsed(text, float, "a number of seconds")
    if not 0.05 <= value <= 86_400:  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 0.05 to 86400 seconds")
    return value


def watch(text: str) -> float:
    """0 to 86400 seconds (a deploy's watch)."""
    value = parsed(text, float, "a number of seconds")
    if not 0 <= value <= 86_400:  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 0 to 86400 seconds")
    return value


def positive(text: str) -> float:
    """A number > 0."""
    value = parsed(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} keeps nothing: use a number > 0")
    return value
