"""Issue 20's done-when: telemetry survives a broker that forgets, through the collector's gap repair.

Real parts (``tests/integration/rig.py``): the runtime serving a signed digits MLP with ``--trust`` and ``--mqtt``,
``edgekit telemetry collect`` on its defaults (no client id: the derived one; the fleet's key to sign its resend
requests), and a Mosquitto **without persistence**: each restart forgets every session, subscription and queued
message. The broker's PUBACK then proves nothing; only the device's replay and the collector's repair make the
stored windows whole.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time

import pytest

from tests.brokers import Mosquitto
from tests.integration.fleet_rig import signed_digits
from tests.integration.rig import DEVICE, FLEET, Collector, Load, runtime, wait_for

TOTAL = 10_000


@pytest.fixture
def forgetful(tmp_path_factory):
    """A Mosquitto that keeps nothing across a restart."""
    broker = Mosquitto(tmp_path_factory.mktemp("forgetful"), persistence=False)
    broker.start()
    yield broker
    broker.stop()


def stored(db) -> tuple[int, int, int]:
    """(windows, requests, lost windows) the collector stored for the device."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            windows, requests = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(requests), 0) FROM telemetry WHERE fleet = ? AND device = ?",
                (FLEET, DEVICE),
            ).fetchone()
            lost = conn.execute("SELECT COUNT(*) FROM telemetry_lost").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet
        return 0, 0, 0
    return int(windows), int(requests), int(lost)


def test_ten_thousand_requests_through_three_forgetful_broker_restarts_and_two_collector_restarts(
    rows, forgetful, tmp_path
):
    public, bundles = signed_digits(tmp_path / "keys", ("1.0.0",))
    db, log = tmp_path / "telemetry.db", tmp_path / "collector.log"
    defaults = ("--sign-key", str(public.with_suffix(".key")))  # the fleet's key; nothing else set

    def collector() -> Collector:
        running = Collector(forgetful, db, log, options=defaults)
        running.subscribed(forgetful)
        return running

    def restart_broker(sig: int) -> None:
        forgetful.stop(sig)
        time.sleep(0.5)
        forgetful.start()

    current = collector()
    server = runtime(bundles["1.0.0"], forgetful, tmp_path, "--trust", str(public))
    try:
        load = Load(server.url, TOTAL, pause=0.002).start(rows)

        def reach(mark: int) -> None:
            wait_for(lambda: load.done >= mark, 120, f"{mark} requests answered")

        reach(1_500)
        restart_broker(signal.SIGTERM)  # 1: forgets the collector's session while it is connected
        reach(3_000)
        current.stop()  # the collector goes away; the broker queues for its session...
        reach(4_000)
        restart_broker(signal.SIGTERM)  # 2: ...and forgets it: every window of that stretch is PUBACKed, then gone
        current = collector()  # 1st restart, the same derived client id
        reach(6_000)
        restart_broker(signal.SIGKILL)  # 3: a crash
        reach(7_500)
        current.stop()
        reach(8_500)
        current = collector()  # 2nd restart
        assert load.wait(300) == TOTAL
        # windows the broker lost are asked for again, signed, and sent from the device's replay
        wait_for(lambda: stored(db)[1] == TOTAL, 180, f"{TOTAL} requests stored", log)
    finally:
        current.stop()
        assert server.stop() == 0
    windows, requests, lost = stored(db)
    assert requests == TOTAL
    assert lost == 0
    with sqlite3.connect(db) as conn:
        seqs = [seq for (seq,) in conn.execute("SELECT seq FROM telemetry WHERE device = ? ORDER BY seq", (DEVICE,))]
        events = conn.execute("SELECT payload FROM events WHERE command = 'resend' AND status = 'done'").fetchall()
    assert len(seqs) == windows
    assert seqs == list(range(1, len(seqs) + 1))  # no gap left
    # the repair did the work: the broker lost windows, and the device sent them again on request
    resent = sum(json.loads(payload)["resent"]["resent"] for (payload,) in events)
    assert events
    assert resent > 0
    asked = [int(n) for n in re.findall(r"to send (\d+) missing windows again", log.read_text())]
    assert sum(asked) >= resent
