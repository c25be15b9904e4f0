"""The recorder cuts windows, writes them to the outbox in order, and never loses or double-counts a request."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time

import msgspec
import numpy as np
import pytest

from edgekit_runtime import __version__
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import REFERENCE
from edgekit_runtime.contract.telemetry import WINDOW_SCHEMA
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.telemetry.outbox import Outbox, OutboxLimits
from edgekit_runtime.telemetry.recorder import Identity, Recorder, RecorderSettings
from edgekit_runtime.telemetry.session import window_bytes

MODEL = {"name": "digits-mlp", "version": "1.0.0", "sha256": "0" * 64, "backend": "onnxruntime"}
IDENTITY = Identity("lab", "pi-7", MODEL, __version__)


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def reference(signed_bundle):
    return json.loads(open_bundle(signed_bundle).read(REFERENCE))


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def stored(outbox):
    """The windows in the outbox, in order, as the recorder wrote them."""
    return [(entry.seq, json.loads(entry.payload)) for entry in outbox.pending(10**9)]


def test_windows_are_written_in_order_with_who_sent_them(outbox):
    clock, told = Clock(), []
    recorder = Recorder(outbox, IDENTITY, clock=clock, on_window=told.append)
    seqs = []
    for requests in (2, 0, 1):
        for _ in range(requests):
            recorder.record(0.003)
        clock.now += 10.0
        seqs.append(recorder.close_window())
    assert seqs == told
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    windows = stored(outbox)
    assert [seq for seq, _ in windows] == seqs
    docs = [doc for _, doc in windows]
    assert list(docs[0])[:7] == ["schema", "fleet", "device", "window_start", "window_end", "model", "runtime"]
    for doc in docs:
        assert (doc["schema"], doc["fleet"], doc["device"]) == (WINDOW_SCHEMA, "lab", "pi-7")
        assert doc["model"] == MODEL
        assert doc["runtime"] == {"version": __version__}
        assert doc["system"] is None  # no sampler
        assert "seq" not in doc  # the publisher adds it, and the outbox counts, when it sends
        assert "outbox" not in doc
    assert [d["requests"] for d in docs] == [2, 0, 1]
    assert [(d["window_start"], d["window_end"]) for d in docs] == [
        (1_795_000_000.0, 1_795_000_010.0),
        (1_795_000_010.0, 1_795_000_020.0),
        (1_795_000_020.0, 1_795_000_030.0),
    ]


def test_requests_recorded_while_windows_close_are_each_counted_once(outbox, reference):
    rows = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    every = RecorderSettings(sample_rate=1e12)  # no sampling: every request's inputs are counted
    recorder = Recorder(outbox, IDENTITY, reference=reference, settings=every)
    workers, per_worker = 4, 3000
    start = threading.Barrier(workers + 1)
    # one close surely falls between the two halves of the requests, however the threads are scheduled
    halfway, closed = threading.Barrier(workers + 1), threading.Barrier(workers + 1)
    done = threading.Event()

    def record(index):
        start.wait()
        for i in range(per_worker):
            if i == per_worker // 2:
                halfway.wait()
                closed.wait()
            if i % 10 == index:
                recorder.record(0.0001, error="invalid_input")
            else:
                recorder.record(0.002, inputs={"input": rows[: 1 + i % 4]}, first_output=np.array([index]))

    def close():
        start.wait()
        halfway.wait()
        recorder.close_window()
        closed.wait()
        while not done.is_set():
            recorder.close_window()

    threads = [threading.Thread(target=record, args=(i,)) for i in range(workers)]
    closer = threading.Thread(target=close)
    for thread in [*threads, closer]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    closer.join()
    recorder.close_window()

    docs = [doc for _, doc in stored(outbox)]
    assert sum(1 for d in docs if d["requests"]) > 1, "no window closed while requests were recorded"
    assert sum(d["requests"] for d in docs) == workers * per_worker
    assert sum(sum(d["latency_ms"]["counts"]) for d in docs) == workers * per_worker
    assert sum(n for d in docs for n in d["errors"].values()) == workers * per_worker // 10
    ok = workers * per_worker * 9 // 10
    assert sum(n for d in docs for n in d["batch_sizes"].values()) == ok
    samples = sum(int(size) * n for d in docs for size, n in d["batch_sizes"].items())
    assert sum(d["inputs"][0]["features"][0]["count"] for d in docs if d["inputs"]) == samples
    assert sum(n for d in docs for n in d.get("outputs", {}).get("classes", {}).values()) == ok
    for index in range(workers):
        labelled = sum(d["outputs"].get("classes", {}).get(str(index), 0) for d in docs)
        assert labelled == per_worker * 9 // 10


def test_stop_writes_the_open_window(outbox):
    recorder = Recorder(outbox, IDENTITY, settings=RecorderSettings(interval=86_400))
    recorder.start()
    for _ in range(3):
        recorder.record(0.001)
    recorder.stop(final=True)
    assert [doc["requests"] for _, doc in stored(outbox)] == [3]


def test_stop_without_final_writes_nothing_more(outbox):
    recorder = Recorder(outbox, IDENTITY, settings=RecorderSettings(interval=86_400))
    recorder.start()
    recorder.record(0.001)
    recorder.stop(final=False)
    assert stored(outbox) == []


def test_the_thread_closes_a_window_every_interval(outbox):
    two = threading.Event()
    told = []

    def on_window(seq):
        told.append(seq)
        if len(told) >= 2:
            two.set()

    recorder = Recorder(outbox, IDENTITY, settings=RecorderSettings(interval=0.05), on_window=on_window)
    recorder.start()
    recorder.start()  # a second start changes nothing
    assert two.wait(10.0)
    recorder.stop(final=True)
    docs = [doc for _, doc in stored(outbox)]
    assert len(docs) == len(told) >= 3
    for earlier, later in itertools.pairwise(docs):
        assert earlier["window_end"] == later["window_start"]


def test_a_window_too_large_for_the_outbox_is_logged_and_lost(tmp_path, caplog):
    told = []
    with Outbox(tmp_path / "outbox.db", OutboxLimits(max_bytes=200)) as box:
        recorder = Recorder(box, IDENTITY, on_window=told.append)
        recorder.record(0.001)
        with caplog.at_level(logging.WARNING, logger="edgekit_runtime.telemetry"):
            assert recorder.close_window() is None
        assert box.count == 0
    assert told == []
    assert "telemetry window" in caplog.text
    assert "lost" in caplog.text


def disk_full(box: Outbox) -> None:
    """SQLite answers "database or disk is full" from now on, as on a full disk: the file may not grow."""
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")


def space_again(box: Outbox) -> None:
    box._db.execute("PRAGMA max_page_count = 1000000")


def larger_than_a_page(recorder: Recorder) -> None:
    """Windows from now on need new pages to be stored (a small one could fit in a page's free space)."""
    recorder._model = msgspec.structs.replace(recorder._model, name="x" * 6000)


def test_a_full_disk_loses_windows_counts_them_and_the_recorder_goes_on(tmp_path, caplog):
    with Outbox(tmp_path / "outbox.db") as box:
        recorder = Recorder(box, IDENTITY, settings=RecorderSettings(interval=0.05))
        assert recorder.close_window() is not None
        disk_full(box)
        larger_than_a_page(recorder)
        recorder.start()  # the recorder's own thread meets the full disk, window after window
        with caplog.at_level(logging.DEBUG, logger="edgekit_runtime.telemetry"):
            deadline = time.monotonic() + 10
            while box.lost < 3 and time.monotonic() < deadline:
                recorder.record(0.001)
                time.sleep(0.01)
            recorder.stop(final=True)  # the final window is lost the same way, without raising
        lost = box.lost
        assert lost >= 3
        assert box.dropped == lost
        assert box.count == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # one line when the losses start, not one per window
        assert "lost" in warnings[0]
        assert "database or disk is full" in warnings[0]
        caplog.clear()
        space_again(box)
        recorder.record(0.001)
        with caplog.at_level(logging.WARNING, logger="edgekit_runtime.telemetry"):
            seq = recorder.close_window()
        assert seq is not None
        assert f"stores windows again (seq {seq}); {lost} before it" in caplog.text
        assert (box.dropped, box.lost) == (lost, 0)
        assert [doc["requests"] for _, doc in stored(box)][-1] == 1


def send(box: Outbox) -> list[bytes]:
    """What the publisher would send now, one message per window; acknowledged at once."""
    entries = box.pending(10**9)
    messages = [window_bytes(entry, box.dropped, box.count) for entry in entries]
    box.ack(entry.seq for entry in entries)
    return messages


def test_the_collector_sees_every_lost_window_once(tmp_path):
    from edgekit.telemetry.messages import parse_message  # the host's side of the contract
    from edgekit.telemetry.store import SQLiteStore

    clock = Clock()
    collector = SQLiteStore(tmp_path / "collected.db")
    with Outbox(tmp_path / "outbox.db") as box:
        recorder = Recorder(box, IDENTITY, clock=clock)

        def window(requests: int) -> int | None:
            for _ in range(requests):
                recorder.record(0.001)
            clock.now += 10.0
            return recorder.close_window()

        def collect() -> None:
            for message in send(box):
                collector.add_windows(parse_message("edgekit/lab/pi-7/telemetry", message, received=clock.now).windows)

        assert window(5) is not None
        collect()
        disk_full(box)
        larger_than_a_page(recorder)
        assert [window(7), window(11)] == [None, None]
        collect()  # nothing new to send
        space_again(box)
        assert window(13) is not None
        collect()
        assert window(17) is not None
        collect()
        ((device,),) = [collector.summary()]
    collector.close()
    assert device.windows == 3
    assert device.dropped == 2  # the two lost windows, counted once
    assert device.windows + device.dropped == 5  # every window closed is stored or counted
    assert device.gaps == 0  # no sequence number was used up: the count is the only trace, and it is there
    assert device.requests == 5 + 13 + 17  # the 7 + 11 requests of the lost windows are gone with them
    with sqlite3.connect(tmp_path / "collected.db") as db:
        dropped = db.execute("SELECT seq, dropped FROM telemetry ORDER BY seq").fetchall()
    assert dropped == [(1, 0), (2, 2), (3, 2)]  # the first window written once space returned carries them


def test_a_request_without_samples_does_not_lose_the_window(outbox, reference):
    recorder = Recorder(outbox, IDENTITY, reference=reference)
    empty = {"input": np.zeros((0, 64), np.float32)}
    recorder.record(0.001, inputs=empty, first_output=np.zeros(0, np.int64))  # a CNN answers these
    recorder.record(0.001, error="invalid_input")
    assert recorder.close_window() is not None
    recorder.record(0.001, inputs=empty, first_output=np.zeros(0, np.int64))
    recorder.record(0.001, inputs={"input": np.zeros((2, 64), np.float32)}, first_output=np.array([3, 3]))
    assert recorder.close_window() is not None
    (_, alone), (_, mixed) = stored(outbox)
    assert alone["requests"] == 2
    assert alone["batch_sizes"] == {"0": 1}
    assert alone["inputs"] == []
    assert alone["outputs"] == {}
    assert mixed["batch_sizes"] == {"0": 1, "2": 1}
    assert mixed["inputs"][0]["features"][0]["count"] == 2
    assert mixed["outputs"] == {"classes": {"3": 2}}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"interval": 0.01}, "--telemetry-interval 0.01 is out of range"),
        ({"interval": 86_401}, "out of range: use 0.05 to 86400 seconds"),
        ({"psi_threshold": 0}, "psi_threshold 0 flags everything"),
        ({"psi_threshold": -0.1}, "use a value > 0"),
        ({"min_samples": 0}, "min_samples 0 is not a count"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        RecorderSettings(**settings)


def test_settings_at_their_bounds_are_accepted():
    assert RecorderSettings(interval=0.05, min_samples=1).interval == 0.05
    assert RecorderSettings(interval=86_400).interval == 86_400


def test_a_full_buffer_is_counted_on_the_recorders_thread_not_by_record(outbox, reference, monkeypatch):
    monkeypatch.setattr("edgekit_runtime.telemetry.window.FLUSH_ELEMENTS", 64 * 100)
    recorder = Recorder(outbox, IDENTITY, reference=reference, settings=RecorderSettings(interval=3600))
    counted_on = []
    real_count = recorder._window.count

    def count(taken):
        counted_on.append(threading.current_thread().name)
        real_count(taken)

    recorder._window.count = count
    recorder.start()
    try:
        row = np.zeros((1, 64), dtype=np.float32)
        for _ in range(250):  # 16,000 values: over the bound twice
            recorder.record(0.001, inputs={"input": row})
        deadline = time.monotonic() + 10
        while not counted_on and time.monotonic() < deadline:
            time.sleep(0.01)
        before_stop = list(counted_on)
    finally:
        recorder.stop()
    assert before_stop
    assert set(before_stop) == {"edgekit-telemetry-windows"}  # never the recording thread
    ((_, window),) = stored(outbox)
    assert window["requests"] == 250
    assert window["inputs"][0]["features"][0]["count"] == 250


def test_above_the_sample_rate_only_the_first_requests_of_each_second_keep_their_inputs(outbox, reference):
    recorder = Recorder(outbox, IDENTITY, reference=reference, settings=RecorderSettings(sample_rate=100))
    row = np.zeros((1, 64), dtype=np.float32)
    for _ in range(1000):  # well within one second
        recorder.record(0.001, inputs={"input": row}, first_output=np.array([7]))
    recorder.record(0.001, error="invalid_input")
    recorder.close_window()
    ((_, window),) = stored(outbox)
    assert window["requests"] == 1001
    assert window["batch_sizes"] == {"1": 1000}  # counted for every request
    assert window["sampled"] == 100
    assert window["inputs"][0]["features"][0]["count"] == 100
    assert window["outputs"]["classes"] == {"7": 100}


def test_a_new_interval_closes_the_open_window_and_cuts_the_next_ones_to_it(outbox):
    told = []
    three = threading.Event()

    def on_window(seq):
        told.append(seq)
        if len(told) >= 3:
            three.set()

    recorder = Recorder(outbox, IDENTITY, settings=RecorderSettings(interval=86_400), on_window=on_window)
    recorder.start()
    for _ in range(3):
        recorder.record(0.001)
    changed = time.time()
    recorder.set_interval(0.1)  # set-config, from the agent's thread
    assert three.wait(10.0)
    recorder.stop(final=False)
    docs = [doc for _, doc in stored(outbox)]
    assert docs[0]["requests"] == 3  # the open window closed under the old interval, at once
    assert docs[0]["window_end"] - changed < 5
    for earlier, later in itertools.pairwise(docs):
        assert earlier["window_end"] == later["window_start"]
    assert all(doc["window_end"] - doc["window_start"] < 5 for doc in docs[1:])  # not a day long any more
    assert recorder.settings.interval == 0.1


def test_a_new_interval_is_checked_and_waits_for_start(outbox):
    recorder = Recorder(outbox, IDENTITY)
    recorder.set_interval(2.5)  # not started: nothing to close, the thread starts with it
    assert recorder.settings.interval == 2.5
    assert stored(outbox) == []
    with pytest.raises(ConfigError, match="out of range"):
        recorder.set_interval(0)
    assert recorder.settings.interval == 2.5
