"""The dashboard's reads on both stores: events kept once, the latest step per command, and time series."""

from __future__ import annotations

import sqlite3

import pytest

from edgekit.telemetry.messages import parse_message
from edgekit.telemetry.store import open_store
from tests.edgekit.telemetry.sample import encode, event, topic, window


def events(*docs):
    found = []
    for doc in docs:
        parsed = parse_message(topic("events", device=doc["device"]), encode(doc), received=1795000500.0)
        assert parsed.event is not None
        found.append(parsed.event)
    return found


def windows(*docs):
    found = []
    for doc in docs:
        where = topic(fleet=doc["fleet"], device=doc["device"])
        found.extend(parse_message(where, encode(doc), received=1795000500.0).windows)
    return found


def test_events_are_idempotent_and_share_the_windows_transaction(store):
    first = store.add_windows(
        windows(window(1)), events=events(event("received", time=1.0), event("fetching", time=2.0))
    )
    assert (first.new, first.events, first.duplicate_events) == (1, 2, 0)
    again = store.add_windows([], events=events(event("fetching", time=9.0), event("verifying", time=3.0)))
    assert (again.new, again.events, again.duplicate_events) == (0, 1, 1)
    (step,) = store.latest_events()
    assert (step.status, step.time) == ("verifying", 3.0)  # the redelivered fetching (time 9) was not stored


def test_latest_step_per_device_and_command(store):
    store.add_windows(
        [],
        events=events(
            event("received", time=100.0),
            event("switching", time=103.0),
            event("watching", time=104.0),
            event("received", device="pi-8", time=101.0),
            event("refused", device="pi-8", time=102.0, model=None, detail="signature does not verify"),
            event("received", command_id="old", time=50.0),
            event("done", command_id="old", command="status", time=51.0),
        ),
    )
    steps = store.latest_events()
    assert [(s.id, s.device, s.status) for s in steps] == [
        ("deploy-1", "pi-7", "watching"),
        ("deploy-1", "pi-8", "refused"),
        ("old", "pi-7", "done"),
    ]
    assert steps[0].model == {"name": "digits-cnn", "version": "1.1.0", "sha256": "9f" * 32}
    assert (steps[1].model, steps[1].detail, steps[1].time) == (None, "signature does not verify", 102.0)
    assert steps[2].command == "status"
    assert [s.id for s in store.latest_events(commands=1)] == ["deploy-1", "deploy-1"]
    assert steps[0].to_json()["status"] == "watching"


def test_series_is_the_recent_windows_oldest_first(store):
    store.add_windows(
        windows(
            window(1),
            window(2, requests=50, errors={"timeout": 5}, drift=True, latency_ms={"p99": 9.0}),
            window(3, requests=0, errors={}, latency_ms={"p99": None}),
            window(1, device="pi-8", requests=10),
            window(1, fleet="other", device="pi-7"),
        )
    )
    points = store.series("pi-7", since=0.0, fleet="lab")
    assert [p.window_end for p in points] == [1795000010.0, 1795000020.0, 1795000030.0]
    assert [p.requests_per_s for p in points] == [12.0, 5.0, 0.0]
    assert [p.p99 for p in points] == [5.0, 9.0, None]
    assert points[0].error_rate == pytest.approx(2 / 120)
    assert (points[1].error_rate, points[2].error_rate) == (0.1, None)
    assert [p.drift for p in points] == [False, True, False]
    assert [p.window_end for p in store.series("pi-7", since=1795000020.0, fleet="lab")] == [1795000020.0, 1795000030.0]
    assert len(store.series("pi-7", since=0.0)) == 4  # both fleets
    assert store.series("pi-9", since=0.0) == []
    assert points[1].to_json() == {
        "window_end": 1795000020.0,
        "requests_per_s": 5.0,
        "p99": 9.0,
        "error_rate": 0.1,
        "drift": True,
    }


def test_a_database_without_the_events_table(tmp_path):
    path = tmp_path / "old.db"
    with open_store(path) as store:
        store.add_windows(windows(window(1)))
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE events")  # as a collector before events made it
    with open_store(path, create=False) as store:
        assert store.latest_events() == []
        assert len(store.series("pi-7", since=0.0)) == 1
    with open_store(path) as store:  # a collector opening it adds the table
        assert store.add_windows([], events=events(event("received"))).events == 1


def test_postgres_without_the_events_table(postgres_url):
    import psycopg

    with open_store(postgres_url) as store:
        store.add_windows(windows(window(1)), events=events(event("received")))
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("DROP TABLE events")
        assert store.latest_events() == []
        assert store.summary()[0].windows == 1


def test_steps_sent_at_the_same_time_end_on_the_later_one(store):
    store.add_windows([], events=events(event("refused", time=7.0), event("verifying", time=7.0)))
    (step,) = store.latest_events()
    assert step.status == "refused"
