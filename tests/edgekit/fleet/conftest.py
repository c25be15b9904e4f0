"""A fleet to look at: three devices' last 15 minutes of windows (one drifting, one gone offline), and a rollout.

Every row goes through the collector's parser, as if it had come from the broker. Times are fixed (``NOW``) and
the dashboards under test are given that clock, so the numbers below are what the page and the API show.
"""

from __future__ import annotations

import math
import random

import pytest

from edgekit.fleet.dashboard import Dashboard, DashboardSettings
from edgekit.telemetry.messages import parse_message
from edgekit.telemetry.store import open_store
from tests.edgekit.telemetry.conftest import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL tests)
from tests.edgekit.telemetry.sample import encode, event, state, topic, window

NOW = 1795003600.0
INTERVAL = 10.0
#: 15 minutes of 10 s windows
WINDOWS = 90
#: device: (seconds since its last window, index of its first drifting window)
DEVICES = {"pi-1": (5.0, None), "pi-2": (5.0, 70), "pi-3": (240.0, None)}
STATUS = {"pi-1": "online", "pi-2": "online", "pi-3": "offline"}
#: the rollout: each device's steps of deploy-7, and when it took them (seconds before NOW)
ROLLOUT = {
    "pi-1": [("received", 300), ("fetching", 298), ("verifying", 290), ("testing", 288), ("switching", 280),
             ("watching", 279), ("committed", 60)],
    "pi-2": [("received", 300), ("fetching", 297), ("verifying", 289), ("testing", 287), ("switching", 278),
             ("watching", 277)],
    "pi-3": [("received", 300), ("fetching", 296), ("verifying", 295), ("refused", 295)],
}  # fmt: skip


def _windows(device: str, behind: float, drift_from: int | None, rng: random.Random) -> list[dict]:
    docs = []
    for i in range(WINDOWS):
        end = NOW - behind - INTERVAL * (WINDOWS - 1 - i)
        drifting = drift_from is not None and i >= drift_from
        requests = int(400 + 150 * math.sin(i / 9) + rng.randint(0, 60))
        errors = {"invalid_input": rng.randint(1, 3)} if rng.random() < 0.2 else {}
        p99 = rng.choice((2.5, 5.0, 5.0, 10.0)) * (2 if drifting else 1)
        counts = [0] * 5  # the buckets below, and everything slower: most at 2.5 ms or less, a tail slower
        counts[2 if drifting else 1] = tail = requests // 40
        counts[0] = requests - tail
        docs.append(
            window(
                i + 1,
                device=device,
                window_start=end - INTERVAL,
                window_end=end,
                requests=requests,
                errors=errors,
                latency_ms={"buckets": [2.5, 5.0, 10.0, 25.0], "counts": counts, "p50": 2.5, "p90": 5.0, "p99": p99},
                drift=drifting,
                outbox={"dropped": 0, "pending": 1},
            )
        )
    return docs


def fill(url) -> None:
    """Write the fleet into the store at ``url`` (a SQLite path, or a PostgreSQL URL)."""
    rng = random.Random(7)  # noqa: S311 (made-up numbers, not secrets)
    windows, states, events = [], [], []
    for device, (behind, drift_from) in DEVICES.items():
        for doc in _windows(device, behind, drift_from, rng):
            windows.extend(parse_message(topic(device=device), encode(doc), received=doc["window_end"]).windows)
        message = {**state(STATUS[device], device=device), "since": NOW - 3600}
        if STATUS[device] == "offline":
            message["reason"] = "lost"
        states.append(parse_message(topic("state", device=device), encode(message), received=NOW - behind).state)
        for status, before in ROLLOUT[device]:
            doc = event(status, command_id="deploy-7", device=device, time=NOW - before)
            events.append(parse_message(topic("events", device=device), encode(doc), received=NOW - before).event)
    older = event("done", command_id="status-3", command="status", device="pi-1", time=NOW - 900, model=None)
    events.append(parse_message(topic("events", device="pi-1"), encode(older), received=NOW - 900).event)
    with open_store(url) as store:
        store.add_windows(windows, states, events)


@pytest.fixture
def fleet_db(tmp_path):
    """A SQLite file holding the fleet."""
    path = tmp_path / "fleet.db"
    fill(path)
    return path


@pytest.fixture
def dashboard(fleet_db):
    """The dashboard of the fleet on a free loopback port, its clock at ``NOW``."""
    with (
        open_store(fleet_db, create=False) as store,
        Dashboard(store, DashboardSettings(port=0), clock=lambda: NOW) as d,
    ):
        yield d
