"""The SQLite and PostgreSQL stores: idempotent inserts, states, the summary, and errors that say what to do."""

from __future__ import annotations

import dataclasses
import sqlite3
import sys

import pytest

from edgekit.errors import ConfigError, MissingExtraError, TelemetryError
from edgekit.telemetry.messages import parse_message
from edgekit.telemetry.store import SQLiteStore, open_store
from tests.edgekit.telemetry.sample import batch, encode, state, topic, window


def rows(*docs, device="pi-7", received=1795000500.0):
    found = []
    for doc in docs:
        found.extend(parse_message(topic(device=device), encode(doc), received=received).windows)
    return found


def state_row(status, device="pi-7", received=1795000500.0):
    parsed = parse_message(topic("state", device=device), encode(state(status, device=device)), received=received)
    assert parsed.state is not None
    return parsed.state


def test_inserts_are_idempotent_and_counted(store):
    first = store.add_windows(rows(window(1), window(2), window(3)))
    assert (first.new, first.duplicates) == (3, 0)
    again = store.add_windows(rows(window(2), window(3), window(4)))
    assert (again.new, again.duplicates) == (1, 2)
    within = store.add_windows(rows(window(5), window(5, requests=999)))
    assert (within.new, within.duplicates) == (1, 1)
    (summary,) = store.summary()
    assert summary.windows == 5
    assert summary.requests == 5 * 120  # the first copy of seq 5 was kept


def test_the_same_seq_on_another_device_is_another_window(store):
    added = store.add_windows(rows(window(1)) + rows(window(1, device="pi-8"), device="pi-8"))
    assert (added.new, added.duplicates) == (2, 0)
    assert [s.device for s in store.summary()] == ["pi-7", "pi-8"]


def test_summary_numbers(store):
    store.add_windows(
        rows(
            window(1, requests=100, errors={"timeout": 1}, outbox={"dropped": 0}),
            batch([window(2, requests=50, errors={}), window(5, requests=10, errors={"invalid_input": 4})]),
            window(6, requests=40, errors={"timeout": 1, "server_error": 2}, drift=True, outbox={"dropped": 2}),
            window(
                7, requests=0, errors={}, latency_ms={"p99": 250.0}, model={"name": "digits-cnn", "version": "1.1.0"}
            ),
        ),
        [state_row("online")],
    )
    (s,) = store.summary()
    assert (s.fleet, s.device, s.status) == ("lab", "pi-7", "online")
    assert (s.model_name, s.model_version) == ("digits-cnn", "1.1.0")  # the newest window's
    assert s.windows == 5
    assert s.requests == 200
    assert s.errors == 8
    assert s.error_rate == pytest.approx(8 / 200)
    # the last 15 minutes' histograms merged and interpolated, not the newest window's p99 (it had no requests)
    assert (s.p99, s.p99_requests, s.p99_above, s.p99_minutes) == (4.7, 200, None, 15)
    assert s.drift is False  # the newest window saw none
    assert s.last_seen == 1795000070.0
    assert s.gaps == 2  # seq 3 and 4
    assert s.dropped == 2
    data = s.to_json()
    assert data["error_rate"] == pytest.approx(0.04)
    assert data["gaps"] == 2


def test_newest_is_by_window_end_not_arrival(store):
    store.add_windows(rows(window(9, drift=True)))
    store.add_windows(rows(window(3, drift=False, latency_ms={"p99": 1.0})))  # a late redelivery of an older window
    (s,) = store.summary()
    assert s.drift is True
    assert s.p99 == 4.7  # window 9's histogram: window 3's latency has none
    assert s.gaps == 5


def test_states_replace_each_other_and_count_as_devices(store):
    added = store.add_windows([], [state_row("online", device="pi-9")])
    assert (added.new, added.duplicates, added.states) == (0, 0, 1)
    store.add_windows([], [state_row("offline", device="pi-9", received=1795000600.0)])
    (s,) = store.summary()
    assert (s.device, s.status, s.windows, s.requests, s.gaps) == ("pi-9", "offline", 0, 0, 0)
    assert (s.p99, s.drift, s.last_seen, s.error_rate, s.model_name) == (None, None, None, None, None)


def test_an_empty_store_has_no_devices(store):
    assert store.summary() == []
    assert store.add_windows([]).new == 0


def test_a_batch_is_one_transaction(store):
    store.add_windows(rows(window(1)))
    good = rows(window(2))[0]
    with pytest.raises(TelemetryError, match="cannot store telemetry"):
        store.add_windows([good, dataclasses.replace(good, seq=3, fleet=None)], [state_row("online")])
    (s,) = store.summary()
    assert s.windows == 1  # window 2 and the state were rolled back with the bad row
    assert s.status is None
    assert store.add_windows([good]).new == 1  # and the store still works


def test_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url, path in (
        ("plain.db", tmp_path / "plain.db"),
        ("sqlite:///relative.db", tmp_path / "relative.db"),
        (f"sqlite:///{tmp_path / 'deep' / 'absolute.db'}", tmp_path / "deep" / "absolute.db"),
    ):
        with open_store(url) as store:
            assert isinstance(store, SQLiteStore)
        assert path.is_file()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {
                "telemetry",
                "device_state",
                "events",
                "telemetry_lost",
            }


def test_sqlite_survives_a_reopen(tmp_path):
    path = tmp_path / "t.db"
    with open_store(path) as store:
        store.add_windows(rows(window(1), window(2)))
    with open_store(path, create=False) as store:
        assert store.add_windows(rows(window(2), window(3))).duplicates == 1
        assert store.summary()[0].windows == 3


def test_show_does_not_create_a_database(tmp_path):
    with pytest.raises(TelemetryError, match=r"no telemetry database at .*: give the --db that collect wrote to"):
        open_store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not a database" * 100)
    with pytest.raises(TelemetryError, match="not a usable SQLite database"):
        open_store(path)


@pytest.mark.parametrize("url", ["mysql://me@db/telemetry", "http://example.com/x.db", "sqlite://", "sqlite:///"])
def test_unknown_urls_are_config_errors(url):
    with pytest.raises(ConfigError):
        open_store(url)


def test_unknown_url_hides_its_password():
    with pytest.raises(ConfigError) as caught:
        open_store("mysql://me:secret@db/telemetry")
    assert "secret" not in str(caught.value)
    assert "mysql://me:***@db/telemetry" in str(caught.value)


def test_postgres_without_psycopg_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgekit\[postgres\]'"):
        open_store("postgresql://postgres@127.0.0.1/test")


def test_postgres_unreachable_is_one_line_with_the_fix():
    with pytest.raises(TelemetryError) as caught:
        open_store("postgresql://postgres:hunter2@127.0.0.1:1/test")
    message = str(caught.value)
    assert "cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/test" in message
    assert "check that it runs" in message
    assert "hunter2" not in message
    assert "\n" not in message


def test_postgres_bad_url(postgres_url):
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        open_store(postgres_url + "&bogus=1")


def test_postgres_show_before_collect(postgres_url):
    with open_store(postgres_url, create=False) as store, pytest.raises(TelemetryError, match="no telemetry tables"):
        store.summary()


def test_postgres_payload_is_jsonb_and_opening_twice_is_fine(postgres_url):
    import psycopg

    with open_store(postgres_url) as store, open_store(postgres_url) as again:
        store.add_windows(rows(window(1, outputs={"classes": {"3": 40}})))
        assert again.summary()[0].windows == 1
    with psycopg.connect(postgres_url) as db:
        kind, classes = db.execute(
            "SELECT pg_typeof(payload)::text, payload->'outputs'->'classes'->>'3' FROM telemetry"
        ).fetchone()
    assert (kind, classes) == ("jsonb", "40")


def test_postgres_reconnects_after_losing_its_connection(postgres_url):
    import psycopg

    with open_store(postgres_url) as store:
        store.add_windows(rows(window(1)))
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # as a server restart would
            admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))
        with pytest.raises(TelemetryError, match="cannot store telemetry"):
            store.add_windows(rows(window(2)))
        assert store.add_windows(rows(window(2))).new == 1  # a new connection
        assert store.summary()[0].windows == 2
