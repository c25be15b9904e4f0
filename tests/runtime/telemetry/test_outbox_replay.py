"""The outbox keeps sent windows for a replay period, requeues what a collector asks for, and names what is gone."""

from __future__ import annotations

import sqlite3

import pytest

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.telemetry.outbox import Outbox, OutboxLimits
from tests.runtime.telemetry.test_outbox import Clock


def filled(box: Outbox, n: int) -> list[int]:
    seqs = [box.append(f"{i:04d}".encode()) for i in range(n)]
    box.ack(seqs)
    return seqs


def test_a_sent_window_is_kept_and_not_pending(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        seqs = filled(box, 3)
        assert box.pending() == []
        assert (box.count, box.size, box.kept) == (0, 0, 3)
        assert box.ack(seqs) == 0  # a second PUBACK changes nothing


def test_requeue_makes_kept_windows_pending_and_names_what_is_gone(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        seqs = filled(box, 5)  # 1..5, all sent
        waiting = box.append(b"late")  # 6, not sent yet
        done = box.requeue([(2, 3), (6, 9)])
        assert (done.requeued, done.waiting, done.gone) == (2, 1, [(7, 9)])
        assert [e.seq for e in box.pending()] == [2, 3, waiting]
        assert box.take_rewind() == 2
        assert box.take_rewind() is None  # taken once
        assert (box.count, box.kept) == (3, 3)
        assert seqs == [1, 2, 3, 4, 5]


def test_requeue_of_nothing_kept_is_all_gone(tmp_path):
    with Outbox(tmp_path / "o.db", OutboxLimits(replay=0)) as box:
        filled(box, 3)  # replay 0: deleted on their PUBACK, as before the replay existed
        assert box.kept == 0
        with sqlite3.connect(tmp_path / "o.db") as db:
            assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        done = box.requeue([(1, 2), (3, 3)])
        assert (done.requeued, done.gone) == (0, [(1, 3)])
        assert box.take_rewind() is None


def test_sent_windows_go_when_their_replay_ends(tmp_path):
    clock = Clock()
    with Outbox(tmp_path / "o.db", OutboxLimits(replay=60), clock=clock) as box:
        filled(box, 2)
        clock.now += 61
        box.append(b"new")  # making room happens on append
        assert box.kept == 0
        assert box.requeue([(1, 2)]).gone == [(1, 2)]
        assert box.dropped == 0  # they were delivered to the broker: not dropped


def test_the_byte_bound_cuts_replay_before_it_drops_a_waiting_window(tmp_path):
    with Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=12)) as box:
        filled(box, 3)  # 12 bytes kept
        box.append(b"aaaa")
        box.append(b"bbbb")
        assert box.dropped == 0
        assert box.kept == 1  # the oldest sent ones made room
        assert [e.payload for e in box.pending()] == [b"aaaa", b"bbbb"]
        box.append(b"cccc")
        box.append(b"dddd")  # nothing sent is left to cut: now the oldest waiting one goes, and is counted
        assert box.kept == 0
        assert box.dropped == 1


def test_an_outbox_from_before_the_replay_opens_and_keeps_its_windows(tmp_path):
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, payload BLOB NOT NULL);"
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT INTO counters VALUES ('dropped', 2);"
            "INSERT INTO outbox (created, payload) VALUES (1.0, x'6162');"
        )
    with Outbox(path) as box:
        assert [e.payload for e in box.pending()] == [b"ab"]
        assert (box.count, box.dropped) == (1, 2)
        box.ack([1])
        assert box.kept == 1


def test_a_negative_replay_is_refused():
    with pytest.raises(ConfigError, match="replay -1 is negative"):
        OutboxLimits(replay=-1)
