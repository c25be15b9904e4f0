"""One line of ``edgekit-runtime doctor``'s answer: how much it matters, and what it says.

A module of its own, so that checks kept beside the doctor (:mod:`edgekit_runtime.jetson`) can make findings
without importing :mod:`edgekit_runtime.doctor`, which imports them. ``doctor`` re-exports both names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``ok``; ``note``: works, but worth knowing; ``problem``: something will fail (the doctor exits 1)
Level = Literal["ok", "note", "problem"]


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's answer."""

    level: Level
    text: str
