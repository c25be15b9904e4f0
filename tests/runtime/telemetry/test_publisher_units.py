"""The publisher's pure parts: reconnect backoff with full jitter, batch packing, the bytes of a window."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.mqtt.backoff import backoff
from edgekit_runtime.telemetry.outbox import Entry
from edgekit_runtime.telemetry.publisher import PublisherSettings
from edgekit_runtime.telemetry.session import pack, window_bytes


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311  (jitter, not secrets)


def backoff_delay(attempt: int, settings: PublisherSettings, rng) -> float:
    """The publisher's reconnect delay: the one backoff, within its settings' bounds."""
    return backoff(attempt, settings.backoff_initial, settings.backoff_max, rng)


class Bound:
    """An rng whose draw is always the top of the range: shows the bound the jitter is drawn under."""

    def uniform(self, low: float, high: float) -> float:
        assert low == 0.0
        return high


def test_the_backoff_bound_doubles_then_caps():
    settings = PublisherSettings(backoff_initial=0.5, backoff_max=30.0)
    bounds = [backoff_delay(n, settings, Bound()) for n in range(10)]
    assert bounds == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert backoff_delay(10_000, settings, Bound()) == 30.0  # a long outage does not overflow


def test_backoff_is_full_jitter_within_its_bound():
    settings = PublisherSettings(backoff_initial=0.25, backoff_max=4.0)
    rng = seeded(42)
    for attempt in range(8):
        bound = min(4.0, 0.25 * 2**attempt)
        draws = [backoff_delay(attempt, settings, rng) for _ in range(300)]
        assert all(0.0 <= d <= bound for d in draws)
        # spread over the whole range, not bunched at the top (that would be lockstep again)
        assert min(draws) < 0.1 * bound
        assert max(draws) > 0.9 * bound
        assert len(set(draws)) == len(draws)


def test_a_seeded_rng_gives_the_same_delays():
    settings = PublisherSettings()
    first, second = seeded(7), seeded(7)
    assert [backoff_delay(n, settings, first) for n in range(12)] == [
        backoff_delay(n, settings, second) for n in range(12)
    ]
    other = seeded(8)
    assert [backoff_delay(3, settings, seeded(7)) for _ in range(2)] != [
        backoff_delay(3, settings, other) for _ in range(2)
    ]


def entries(*sizes):
    return [Entry(seq, 0.0, b"x" * size) for seq, size in enumerate(sizes, start=1)]


def test_pack_takes_the_leading_entries_that_fit():
    # each entry counts its payload plus 96 bytes (seq, the outbox's counts, a comma, a share of the head)
    assert [e.seq for e in pack(entries(100, 100, 100), 392)] == [1, 2]
    assert [e.seq for e in pack(entries(100, 100, 100), 391)] == [1]
    assert [e.seq for e in pack(entries(100, 100, 100), 588)] == [1, 2, 3]
    assert [e.seq for e in pack(entries(10, 500, 10), 1000)] == [1, 2, 3]
    assert [e.seq for e in pack(entries(10, 500, 10), 100)] == [1]  # stops at the first that does not fit


def test_pack_always_takes_one_even_when_it_is_too_large():
    assert [e.seq for e in pack(entries(5000, 10), 100)] == [1]
    assert [e.seq for e in pack(entries(5000), 1)] == [1]
    assert pack([], 100) == []


def test_window_bytes_puts_seq_and_outbox_first():
    stored = orjson.dumps({"schema": "edgekit.telemetry/1", "fleet": "lab", "requests": 3, "errors": {}})
    payload = window_bytes(Entry(42, 0.0, stored), dropped=2, pending=7)
    doc = json.loads(payload)
    assert list(doc)[:3] == ["seq", "outbox", "schema"]
    assert doc == {
        "seq": 42,
        "outbox": {"dropped": 2, "pending": 7},
        "schema": "edgekit.telemetry/1",
        "fleet": "lab",
        "requests": 3,
        "errors": {},
    }
    assert payload.startswith(b'{"seq":42,"outbox":{"dropped":2,"pending":7},"schema"')


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_inflight": 0}, "must each be 1 or more"),
        ({"pack_windows": 0}, "must each be 1 or more"),
        ({"pack_bytes": 0}, "must each be 1 or more"),
        ({"backoff_initial": 0.0}, "is not a range: use 0 < backoff_initial <= backoff_max"),
        ({"backoff_initial": -1.0}, "is not a range"),
        ({"backoff_initial": 10.0, "backoff_max": 5.0}, "reconnect backoff 10.0..5.0 s is not a range"),
        ({"message_expiry": 0}, "message_expiry 0 expires at once"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        PublisherSettings(**settings)


def test_settings_at_their_bounds_are_accepted():
    settings = PublisherSettings(
        max_inflight=1, pack_windows=1, pack_bytes=1, backoff_initial=2.0, backoff_max=2.0, message_expiry=None
    )
    assert backoff_delay(50, settings, Bound()) == 2.0
    assert PublisherSettings(message_expiry=1).message_expiry == 1


def test_subscriptions_made_between_connections_are_made_once_and_all_again_on_the_next_connection(tmp_path):
    from edgekit_runtime.mqtt.settings import MqttSettings
    from edgekit_runtime.telemetry.mqtt import Topics
    from edgekit_runtime.telemetry.outbox import Outbox
    from edgekit_runtime.telemetry.publisher import Publisher

    outbox = Outbox(tmp_path / "outbox.db")
    publisher = Publisher(outbox, MqttSettings("mqtt://127.0.0.1:1"), Topics("lab", "pi-1"))
    publisher.subscribe("a")
    publisher.subscribe("b")
    publisher.subscribe("a")  # already: nothing more
    publisher.unsubscribe("b")
    publisher.unsubscribe("c")  # never subscribed: nothing
    assert publisher.take_subscribe_changes() == [(True, "a"), (True, "b"), (False, "b")]
    assert publisher.take_subscribe_changes() == []
    publisher.subscribe("d")
    assert publisher.take_subscribe_changes(all_now=True) == [(True, "a"), (True, "d")]  # a new connection
    assert publisher.take_subscribe_changes() == []
    outbox.close()
