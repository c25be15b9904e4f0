"""The outbox keeps telemetry on disk, in order, until acknowledged; bounded, counted, and restart-proof."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import pytest

from edgekit_runtime.errors import ConfigError, TelemetryError
from edgekit_runtime.telemetry.outbox import Outbox, OutboxLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_messages_come_back_in_order_until_acknowledged(tmp_path):
    with Outbox(tmp_path / "outbox.db") as box:
        seqs = [box.append(f"m{i}".encode()) for i in range(5)]
        assert seqs == sorted(seqs)
        assert [e.payload for e in box.pending(3)] == [b"m0", b"m1", b"m2"]
        assert box.ack(seqs[:2]) == 2
        assert box.ack(seqs[:2]) == 0  # a second PUBACK for the same message changes nothing
        assert [e.payload for e in box.pending()] == [b"m2", b"m3", b"m4"]
        assert (box.count, box.size) == (3, 6)


def test_a_restart_resumes_and_sequence_numbers_keep_increasing(tmp_path):
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        first = box.append(b"a")
        second = box.append(b"b")
        box.ack([first, second])  # empty now
    with Outbox(path) as box:
        third = box.append(b"c")
        assert third > second  # never reused, even after the outbox was emptied
        assert [e.seq for e in box.pending()] == [third]


def test_the_byte_bound_drops_the_oldest_and_counts_them(tmp_path):
    path = tmp_path / "outbox.db"
    with Outbox(path, OutboxLimits(max_bytes=10)) as box:
        for i in range(6):
            box.append(f"{i:04d}".encode())  # 4 bytes each: two fit
        assert [e.payload for e in box.pending()] == [b"0004", b"0005"]
        assert box.dropped == 4
    with Outbox(path, OutboxLimits(max_bytes=10)) as box:
        assert box.dropped == 4  # the count survives a restart, so the gap can be reported


def test_the_age_bound_drops_what_waited_too_long(tmp_path):
    clock = Clock()
    with Outbox(tmp_path / "outbox.db", OutboxLimits(max_age=60), clock=clock) as box:
        box.append(b"old")
        clock.now += 61
        box.append(b"new")
        assert [e.payload for e in box.pending()] == [b"new"]
        assert box.dropped == 1


def test_a_message_larger_than_the_outbox_is_refused(tmp_path):
    with (
        Outbox(tmp_path / "outbox.db", OutboxLimits(max_bytes=3)) as box,
        pytest.raises(TelemetryError, match="larger"),
    ):
        box.append(b"four")


def test_bad_limits_and_a_corrupt_file_say_so(tmp_path):
    with pytest.raises(ConfigError, match="max_bytes 0"):
        OutboxLimits(max_bytes=0)
    bad = tmp_path / "outbox.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TelemetryError, match="move the file aside"):
        Outbox(bad)


def test_an_append_survives_the_process_being_killed(tmp_path):
    path = tmp_path / "outbox.db"
    code = (
        "import os, signal, sys\n"
        "from edgekit_runtime.telemetry.outbox import Outbox\n"
        f"box = Outbox({str(path)!r})\n"
        "for i in range(50):\n"
        "    box.append(b'window %d' % i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == -signal.SIGKILL
    with Outbox(path) as box:
        assert [e.payload for e in box.pending(100)] == [b"window %d" % i for i in range(50)]


def test_messages_held_for_sending_are_not_dropped_until_released(tmp_path):
    with Outbox(tmp_path / "outbox.db", OutboxLimits(max_bytes=10)) as box:
        box.append(b"aaaa")
        box.append(b"bbbb")
        assert [e.payload for e in box.pending(10, hold=True)] == [b"aaaa", b"bbbb"]  # read to be sent
        box.append(b"cccc")  # over the bound, but the oldest are in flight: nothing dropped
        assert box.dropped == 0
        assert [e.payload for e in box.pending(10)] == [b"aaaa", b"bbbb", b"cccc"]
        box.release()  # the connection ended: they go again next time, or are dropped now
        box.append(b"dddd")
        assert box.dropped == 2
        assert [e.payload for e in box.pending(10)] == [b"cccc", b"dddd"]


def disk_full(box: Outbox) -> None:
    """SQLite answers "database or disk is full" from now on, as on a full disk: the file may not grow."""
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")


def space_again(box: Outbox) -> None:
    box._db.execute("PRAGMA max_page_count = 1000000")


def stored_dropped(path) -> int:
    """The ``dropped`` counter as it is on disk (another connection, as after a restart)."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0])


BIG = b"x" * 6000  # larger than a page: storing it needs new pages


def test_messages_lost_on_a_full_disk_are_counted_at_once_and_stored_with_the_next(tmp_path):
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        box.append(b"before")
        disk_full(box)
        for _ in range(3):
            with pytest.raises(TelemetryError, match=r"database or disk is full.*counted as dropped; free space"):
                box.append(BIG)
        assert (box.count, box.size) == (1, 6)  # nothing half stored
        assert (box.dropped, box.lost) == (3, 3)  # reported from now on, by whatever is sent meanwhile
        assert stored_dropped(path) == 0  # nothing could be written
        assert box.ack([e.seq for e in box.pending()]) == 1  # sending goes on: a delete needs no new page
        space_again(box)
        seq = box.append(BIG)
        assert (box.dropped, box.lost) == (3, 0)
        assert stored_dropped(path) == 3  # in the same transaction as the message that carries it
        box.append(BIG)
        assert box.dropped == 3  # counted once
        assert [e.seq for e in box.pending()] == [seq, seq + 1]  # no sequence number was used up
    with Outbox(path) as box:
        assert box.dropped == 3


def test_lost_and_bound_drops_add_up_in_one_append(tmp_path):
    with Outbox(tmp_path / "outbox.db", OutboxLimits(max_bytes=13_000)) as box:
        box.append(BIG)
        box.append(BIG)
        disk_full(box)
        with pytest.raises(TelemetryError):
            box.append(BIG)
        space_again(box)
        box.append(BIG)  # over the bound: the oldest goes, and the lost one is stored with it
        assert box.dropped == 2
        assert box.count == 2


def test_other_write_errors_and_a_message_too_large_count_too(tmp_path):
    path = tmp_path / "outbox.db"
    with Outbox(path, OutboxLimits(max_bytes=100)) as box:
        box.append(b"a")
        box._db.execute("PRAGMA query_only = ON")  # every write fails, as on a read-only or failing disk
        with pytest.raises(TelemetryError, match="cannot store a message"):
            box.append(b"b")
        with pytest.raises(TelemetryError, match=r"cannot mark sent messages .* they go again"):
            box.ack([1])
        assert box.count == 1
        with pytest.raises(TelemetryError, match="larger than the outbox"):
            box.append(b"c" * 101)
        assert box.dropped == 2
        box._db.execute("PRAGMA query_only = OFF")
        box.append(b"d")
        assert stored_dropped(path) == 2


def test_an_outbox_that_cannot_be_opened_for_want_of_space_says_so(tmp_path, monkeypatch):
    def full(*_args, **_kwargs):
        raise sqlite3.OperationalError("disk I/O error")  # what opening a WAL outbox on a full disk answers

    monkeypatch.setattr(sqlite3, "connect", full)
    with pytest.raises(TelemetryError, match=r"\(disk I/O error\): free space on its disk .* and restart"):
        Outbox(tmp_path / "outbox.db")
