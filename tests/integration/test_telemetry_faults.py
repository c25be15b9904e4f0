"""Issue 6's done-when: telemetry survives a broker that is down, killed, or a device that is killed.

Real parts throughout (``tests/integration/rig.py``): the runtime serving the digits MLP with ``--mqtt``,
the collector process storing into SQLite, a Mosquitto of each test's own that the test stops with SIGTERM
or SIGKILL and starts again on the same port. The collector's persistent session is made before each outage
(its probe window), as in a deployment where the collector was running before the device.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.integration.rig import Load, outbox_rows, runtime, wait_for

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


def test_broker_down_for_a_minute_at_start_then_every_window_arrives(bundle, rows, mosquitto, collector, tmp_path):
    mosquitto.stop(signal.SIGTERM)  # saves the collector's session
    server = runtime(bundle, mosquitto, tmp_path)
    started = time.monotonic()
    try:
        sent = Load(server.url, 300).start(rows).wait()
        time.sleep(max(0.0, 30 - (time.monotonic() - started)))
        sent += Load(server.url, 200).start(rows).wait()
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))
        assert collector.rows() == []
        mosquitto.start()
        wait_for(lambda: sum(r[1] for r in collector.rows()) == sent, 60, f"{sent} requests stored", collector.log)
    finally:
        assert server.stop() == 0
    assert outbox_rows(tmp_path / "state") == []  # the clean stop sent the last window too
    stored = collector.rows()
    seqs = [seq for seq, _, _ in stored]
    assert len(seqs) >= 150  # about 200 windows of 0.3 s in a minute
    assert seqs[0] == 1
    assert contiguous(seqs)
    assert sum(r[1] for r in stored) == sent
    assert max(r[2] or 0 for r in stored) == 0  # nothing dropped


def test_ten_thousand_requests_through_three_broker_kills(bundle, rows, mosquitto, collector, tmp_path):
    mosquitto.wait_saved(time.time())  # the collector's session is on disk: SIGKILL skips the save on exit
    server = runtime(bundle, mosquitto, tmp_path)
    try:
        load = Load(server.url, 10_000, pause=0.002).start(rows)  # paced: the load outlasts three kills
        for mark in (2_000, 4_500, 7_000):
            wait_for(lambda mark=mark: load.done >= mark, 60, f"{mark} requests answered")
            mosquitto.kill()
            time.sleep(1.0)
            mosquitto.start()
            # the broker's guarantee holds while the collector is connected: what it queues for an absent
            # collector is lost if it dies before its next save (docs/telemetry.md); wait for the collector
            last = max((seq for seq, _, _ in collector.rows()), default=0)
            wait_for(lambda last=last: max((seq for seq, _, _ in collector.rows()), default=0) > last, 30, "collecting")
        assert load.running, "the load finished before the third kill: the test proved nothing"
        assert load.wait() == 10_000
        wait_for(lambda: sum(r[1] for r in collector.rows()) >= 10_000, 60, "10,000 requests stored", collector.log)
    finally:
        assert server.stop() == 0
    stored = collector.rows()
    seqs = [seq for seq, _, _ in stored]
    assert len(seqs) == len(set(seqs))
    assert seqs[0] == 1
    assert contiguous(seqs)
    assert sum(r[1] for r in stored) == 10_000


def test_runtime_killed_then_every_window_written_before_the_kill_arrives(bundle, rows, mosquitto, collector, tmp_path):
    mosquitto.stop(signal.SIGTERM)
    server = runtime(bundle, mosquitto, tmp_path)
    sent = Load(server.url, 400).start(rows).wait()
    wait_for((tmp_path / "state" / "telemetry.db").exists, 5, "the outbox")
    time.sleep(1.0)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    written = outbox_rows(tmp_path / "state")
    assert len(written) >= 3
    assert 0 < sum(r for _, r in written) <= sent  # the open window died with the process
    mosquitto.start()
    server = runtime(bundle, mosquitto, tmp_path)
    try:
        last = written[-1][0]
        wait_for(lambda: any(seq > last for seq, _, _ in collector.rows()), 30, "windows after the restart")
        assert (collector.state() or {}).get("status") == "online"
    finally:
        server.stop(signal.SIGKILL)  # again: this time the broker publishes the Last Will
    wait_for(lambda: (collector.state() or {}).get("reason") == "lost", 10, "the Last Will", collector.log)
    assert collector.state()["status"] == "offline"
    stored = {seq: requests for seq, requests, _ in collector.rows()}
    assert all(stored.get(seq) == requests for seq, requests in written)
    assert contiguous(sorted(stored))  # sequence numbers went on from the outbox after the restart


def test_outbox_cap_drops_the_oldest_and_the_drop_count_arrives(bundle, mosquitto, collector, tmp_path):
    mosquitto.stop(signal.SIGTERM)
    server = runtime(bundle, mosquitto, tmp_path, "--outbox-max-mb", "0.02", interval=0.05)
    try:
        time.sleep(6.0)  # ~120 empty windows of ~0.5 KB against a 20 KiB outbox
        mosquitto.start()
        wait_for(lambda: any((r[2] or 0) > 0 for r in collector.rows()), 30, "a drop count", collector.log)
    finally:
        assert server.stop() == 0
    stored = collector.rows()
    seqs = [seq for seq, _, _ in stored]
    dropped = max(r[2] or 0 for r in stored)
    assert seqs[0] > 1, "the oldest windows should have been dropped"
    assert contiguous(seqs)
    assert dropped == seqs[0] - 1  # every missing window is counted, and nothing else is missing
