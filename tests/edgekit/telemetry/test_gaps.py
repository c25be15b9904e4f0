"""Gaps in the stored ``seq`` of each device, less what the device said is lost; on SQLite and PostgreSQL."""

from __future__ import annotations

from edgekit.telemetry.gaps import Gap
from edgekit.telemetry.messages import parse_message
from tests.edgekit.telemetry.sample import encode, event, topic, window
from tests.edgekit.telemetry.test_store import rows


def answer(gone, *, device="pi-7", command_id="resend-1", received=1795000600.0):
    doc = event("done", command_id=command_id, device=device, command="resend", resent={"resent": 0, "gone": gone})
    parsed = parse_message(topic("events", device=device), encode(doc), received=received)
    assert parsed.event is not None
    return parsed.event


def test_gaps_are_the_missing_seq_of_each_device(store):
    store.add_windows(rows(*(window(s) for s in (1, 2, 5, 6, 9))))
    store.add_windows(rows(window(1, device="pi-8"), window(3, device="pi-8"), device="pi-8"))
    assert store.gaps(0) == [
        Gap("lab", "pi-7", 3, 4, 1795000500.0),
        Gap("lab", "pi-7", 7, 8, 1795000500.0),
        Gap("lab", "pi-8", 2, 2, 1795000500.0),
    ]
    assert store.gaps(1795000501.0) == []  # only windows received since then are looked at


def test_what_a_device_says_is_gone_is_lost_not_a_gap(store):
    store.add_windows(rows(*(window(s) for s in (1, 2, 5, 6, 9))))
    store.add_windows([], events=[answer([[4, 4], [7, 8], [20, 30]])])  # 20-30: past what was stored
    assert [(g.first, g.last) for g in store.gaps(0)] == [(3, 3)]
    (summary,) = store.summary()
    assert (summary.gaps, summary.lost) == (1, 3)  # 20-30 lies outside the stored range: not counted
    store.add_windows(rows(window(3), window(7)))  # one that was called lost arrives after all
    (summary,) = store.summary()
    assert (summary.gaps, summary.lost) == (0, 2)
    assert store.gaps(0) == []


def test_an_answer_counts_once_however_often_it_comes(store):
    store.add_windows(rows(window(1), window(5)))
    for _ in range(3):
        store.add_windows([], events=[answer([[2, 4]])])
    store.add_windows([], events=[answer([[3, 4]], command_id="resend-2")])
    (summary,) = store.summary()
    assert (summary.gaps, summary.lost) == (0, 3)


def test_refusals_are_read_per_device(store):
    refused = event("refused", command_id="resend-9", command="resend", detail="no --trust")
    row = parse_message(topic("events"), encode(refused), received=1795000700.0).event
    assert row is not None
    store.add_windows([], events=[row])
    (found,) = store.resend_refusals(0)
    assert (found.fleet, found.device, found.received, found.detail) == ("lab", "pi-7", 1795000700.0, "no --trust")
    assert store.resend_refusals(1795000701.0) == []


def test_a_device_cannot_make_the_collector_store_more_than_a_resend_is_worth():
    row = answer([[1, 2**62], [5, 10]])
    assert len(row.lost) == 10_000
    assert row.lost[:2] == (1, 2)


def test_show_prints_missing_windows_and_how_many_are_lost(tmp_path):
    from typer.testing import CliRunner

    from edgekit.cli import app
    from edgekit.telemetry.store import open_store

    db = tmp_path / "t.db"
    with open_store(db) as store:
        store.add_windows(rows(*(window(s) for s in (1, 2, 6))))
        store.add_windows([], events=[answer([[4, 5]])])
    result = CliRunner().invoke(app, ["telemetry", "show", "--db", str(db)])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if "pi-7" in line]
    assert "3 (2 lost)" in line
    shown = CliRunner().invoke(app, ["telemetry", "show", "--db", str(db), "--json"])
    (device,) = __import__("json").loads(shown.stdout)["devices"]
    assert (device["gaps"], device["lost"]) == (1, 2)
