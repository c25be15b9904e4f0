"""The one reconnect backoff: exponential with full jitter, growing while attempts fail, short again after one works."""

from __future__ import annotations

import random

from edgekit_runtime.mqtt.backoff import Backoff, backoff


class Top:
    """An rng whose draw is always the top of the range: shows the bound the jitter is drawn under."""

    def uniform(self, low: float, high: float) -> float:
        assert low == 0.0
        return high


def test_the_bound_doubles_from_low_and_stops_at_high():
    assert [backoff(n, 0.5, 30.0, Top()) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(10**9, 0.5, 30.0, Top()) == 30.0  # a long outage does not overflow


def test_draws_spread_over_the_whole_range():
    rng = random.Random(3)  # noqa: S311  (jitter)
    draws = [backoff(4, 1.0, 60.0, rng) for _ in range(500)]
    assert all(0.0 <= d <= 16.0 for d in draws)
    assert min(draws) < 1.0
    assert max(draws) > 15.0


def test_backoff_grows_while_attempts_fail_and_resets_after_one_works():
    delays = Backoff(0.5, 4.0, Top())  # type: ignore[arg-type]
    assert [delays.next() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert delays.attempt == 5
    delays.reset()
    assert delays.next() == 0.5


def test_a_seeded_backoff_repeats():
    first = Backoff(0.5, 30.0, random.Random(7))  # noqa: S311
    second = Backoff(0.5, 30.0, random.Random(7))  # noqa: S311
    assert [first.next() for _ in range(6)] == [second.next() for _ in range(6)]
