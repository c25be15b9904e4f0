"""The one reconnect backoff: exponential, with full jitter.

A delay is drawn uniformly from 0 to ``min(high, low * 2**attempt)``, so a fleet that lost the same broker does
not come back in lockstep, and a long outage waits at most ``high`` between tries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def backoff(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: a uniform wait in ``[0, min(high, low * 2**attempt)]``."""
    return rng.uniform(0.0, min(high, low * 2.0 ** min(attempt, 32)))


@dataclass
class Backoff:
    """The waits between one client's connection attempts: growing while they fail, from 0 again after one works."""

    low: float
    high: float
    rng: random.Random = field(default_factory=random.Random)
    #: failed attempts since the last connection that worked
    attempt: int = 0

    def next(self) -> float:
        """How long to wait before the next attempt."""
        delay = backoff(self.attempt, self.low, self.high, self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """A connection worked: the next wait is short again."""
        self.attempt = 0
