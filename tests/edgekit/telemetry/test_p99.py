"""The recent latency p99: histograms merged over a period and interpolated, on both stores and in both commands.

The fleet below, 10 s windows from 1795000000 (window ``seq`` ends at 1795000000 + 10 * seq), buckets 1, 10, 100 ms:

- pi-7: 100 requests at 10 to 100 ms long ago (seq 1), 200 at 1 to 10 ms in its last 15 minutes (seq 150, 151), and
  an idle newest window (seq 200). Its last 15 minutes: rank 198 of 200 in (1, 10]: 1 + 198 / 200 * 9 = 9.91 ms.
  Its last 60 minutes: rank 297 of 300, past the 200 in (1, 10], 97 of the 100 in (10, 100]: 10 + 0.97 * 90 = 97.3.
- pi-8: 100 requests at 1 to 10 ms long ago, then idle: "idle" over 15 minutes, 9.91 ms over 60.
- pi-9: every request slower than the last bound: "> 100".
- pi-10: a state, no windows: "-".
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import ConfigError
from edgekit.telemetry.latency import Histogram, histogram, percentile
from edgekit.telemetry.messages import parse_message
from edgekit.telemetry.store import open_store
from tests.edgekit.telemetry.sample import encode, state, topic, window

runner = CliRunner()
BUCKETS = [1.0, 10.0, 100.0]


def timed(seq: int, device: str, counts: list[int]) -> dict:
    latency = {"buckets": BUCKETS, "counts": counts, "mean": None, "p50": None, "p90": None, "p99": None}
    return window(seq, device=device, requests=sum(counts), errors={}, latency_ms=latency)


FLEET = [
    timed(1, "pi-7", [0, 0, 100, 0]),
    timed(150, "pi-7", [0, 100, 0, 0]),
    timed(151, "pi-7", [0, 100, 0, 0]),
    timed(200, "pi-7", [0, 0, 0, 0]),
    timed(1, "pi-8", [0, 100, 0, 0]),
    timed(200, "pi-8", [0, 0, 0, 0]),
    timed(1, "pi-9", [0, 0, 0, 5]),
]


def fill(store) -> None:
    rows = []
    for doc in FLEET:
        rows.extend(parse_message(topic(device=doc["device"]), encode(doc), received=0.0).windows)
    quiet = parse_message(topic("state", device="pi-10"), encode(state("online", device="pi-10")), received=0.0)
    assert quiet.state is not None
    store.add_windows(rows, [quiet.state])


@pytest.fixture
def filled(store_url):
    with open_store(store_url) as store:
        fill(store)
    return store_url


def test_interpolated_within_the_bucket():
    one = Histogram((2.5, 5.0), (0, 100, 0))
    assert percentile([one]).ms == 4.975  # not 5.0, the bucket's upper bound
    assert percentile([one], 0.5).ms == 3.75
    assert percentile([Histogram((1.0,), (100, 0))]).ms == 0.99  # the first bucket starts at 0 ms
    both = percentile([one, Histogram((0.5, 1.0, 2.5, 5.0), (0, 80, 30, 10, 0))])
    assert (both.ms, both.requests) == (4.95, 220)  # other bounds: merged on all of them
    assert percentile([]) == percentile([Histogram((1.0,), (0, 0))])
    assert percentile([]).ms is None
    assert percentile([]).requests == 0
    above = percentile([Histogram((1.0, 10.0), (98, 0, 2))])
    assert (above.ms, above.above_ms) == (None, 10.0)
    assert percentile([Histogram((1.0, 10.0), (99, 0, 1))]).ms == 1.0  # rank 99 of 100: the 99th is at 1 ms


@pytest.mark.parametrize(
    "value",
    [
        None,
        "not json",
        [1, 2],
        {"buckets": [1.0], "counts": [1]},  # one count short
        {"buckets": [2.0, 1.0], "counts": [0, 0, 0]},  # not increasing
        {"buckets": [0.0], "counts": [0, 0]},  # a bound of 0
        {"buckets": [True], "counts": [0, 1]},
        {"buckets": [1.0], "counts": [-1, 1]},
        {"buckets": [1.0], "counts": [1.5, 1]},
        {"buckets": [], "counts": [3]},
        {"p99": 5.0},  # a window without a histogram
    ],
)
def test_malformed_histograms_are_left_out(value):
    assert histogram(value) is None


def test_histograms_as_stored():
    assert histogram('{"buckets": [1, 10], "counts": [1, 2, 3]}') == Histogram((1.0, 10.0), (1, 2, 3))
    assert histogram({"buckets": [1.0], "counts": [0, 4]}) == Histogram((1.0,), (0, 4))


def test_summary_p99_over_the_recent_windows(filled):
    with open_store(filled, create=False) as store:
        recent = {s.device: s for s in store.summary()}
        hour = {s.device: s for s in store.summary(p99_minutes=60)}
    pi7, pi8, pi9, pi10 = (recent[d] for d in ("pi-7", "pi-8", "pi-9", "pi-10"))
    assert (pi7.p99, pi7.p99_requests, pi7.p99_above, pi7.p99_minutes, pi7.p99_text) == (9.91, 200, None, 15, "9.91")
    assert (pi8.p99, pi8.p99_requests, pi8.p99_text) == (None, 0, "idle")
    assert (pi9.p99, pi9.p99_above, pi9.p99_text) == (None, 100.0, "> 100")
    assert (pi10.p99, pi10.windows, pi10.p99_text) == (None, 0, "-")
    assert (hour["pi-7"].p99, hour["pi-7"].p99_requests, hour["pi-7"].p99_text) == (97.3, 300, "97.3")
    assert (hour["pi-8"].p99, hour["pi-8"].p99_minutes) == (9.91, 60)
    assert pi7.to_json()["p99"] == 9.91
    assert {"p99_minutes", "p99_requests", "p99_above"} <= set(pi7.to_json())


def test_telemetry_show_and_fleet_devices_print_the_same_p99(filled):
    shown = runner.invoke(app, ["telemetry", "show", "--db", filled, "--json"])
    listed = runner.invoke(app, ["fleet", "devices", "--db", filled, "--json"])
    assert (shown.exit_code, listed.exit_code) == (0, 0), shown.output + listed.output
    by_show = {d["device"]: d["p99"] for d in json.loads(shown.stdout)["devices"]}
    by_devices = {d["device"]: d["p99"] for d in json.loads(listed.stdout)}
    assert by_show == by_devices == {"pi-10": None, "pi-7": 9.91, "pi-8": None, "pi-9": None}
    for command in (["telemetry", "show"], ["fleet", "devices"]):
        for minutes, cells in ((15, ("9.91", "idle")), (60, ("97.3", "9.91"))):
            table = runner.invoke(app, [*command, "--db", filled, "--p99-minutes", str(minutes)])
            assert table.exit_code == 0, table.output
            assert f"p99 ms, last {minutes} min" in table.stdout, table.stdout
            lines = {line.split()[3]: line for line in table.stdout.splitlines() if "│ lab " in line}
            assert cells[0] in lines["pi-7"].split()
            assert cells[1] in lines["pi-8"].split()
            assert "100" in lines["pi-9"].split()
            assert ">" in lines["pi-9"].split()


@pytest.mark.parametrize("command", [["telemetry", "show"], ["fleet", "devices"]])
def test_p99_minutes_below_one_is_one_line(command, tmp_path):
    with open_store(tmp_path / "t.db") as store:
        fill(store)
    result = runner.invoke(app, [*command, "--db", str(tmp_path / "t.db"), "--p99-minutes", "0"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "--p99-minutes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("minutes", [0, -1, float("nan")])
def test_a_span_of_no_minutes_is_a_config_error(store, minutes):
    with pytest.raises(ConfigError, match=r"^--p99-minutes .* is not more than 0: give 1 or more$"):
        store.summary(p99_minutes=minutes)
