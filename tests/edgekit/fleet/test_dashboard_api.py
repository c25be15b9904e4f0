"""The dashboard's JSON API and page over plain HTTP, on a fleet of three devices."""

from __future__ import annotations

import itertools
import json
import socket
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import ConfigError, TelemetryError
from edgekit.fleet.dashboard import Dashboard, DashboardSettings
from edgekit.telemetry.store import open_store
from tests.edgekit.fleet.conftest import INTERVAL, NOW, WINDOWS, fill


def get(dashboard, path, headers=None, method="GET"):
    """``(status, headers, body)``; JSON bodies decoded."""
    url = dashboard.url.rstrip("/") + path
    request = urllib.request.Request(url, headers=headers or {}, method=method)  # noqa: S310 (http)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own server)
            status, found, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, found, body = exc.code, exc.headers, exc.read()
    return status, found, json.loads(body) if found["Content-Type"] == "application/json" and body else body


def test_devices(dashboard):
    status, headers, body = get(dashboard, "/api/devices")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert (body["now"], body["refresh_s"]) == (NOW, 5.0)
    devices = {d["device"]: d for d in body["devices"]}
    assert list(devices) == ["pi-1", "pi-2", "pi-3"]
    assert [d["status"] for d in devices.values()] == ["online", "online", "offline"]
    assert [d["drift"] for d in devices.values()] == [False, True, False]
    pi3 = devices["pi-3"]
    assert (pi3["fleet"], pi3["model_name"], pi3["model_version"]) == ("lab", "digits-cnn", "1.0.0")
    assert (pi3["last_seen"], pi3["windows"], pi3["gaps"], pi3["dropped"]) == (NOW - 240, WINDOWS, 0, 0)
    assert 0 < pi3["error_rate"] < 0.01
    assert set(pi3) >= {"requests", "errors", "p99", "p99_minutes", "p99_requests", "p99_above"}
    for device in devices.values():  # the last 15 minutes' histograms merged: inside a bucket, not on its bound
        assert device["p99_minutes"] == 15
        assert 2.5 < device["p99"] < 10.0
        assert device["p99"] != 5.0
        assert device["p99_requests"] > 0
    assert devices["pi-2"]["p99"] > devices["pi-1"]["p99"]  # its drifting windows were slower


def test_devices_p99_is_what_fleet_devices_prints(dashboard, fleet_db):
    listed = CliRunner().invoke(app, ["fleet", "devices", "--db", str(fleet_db), "--json"])
    assert listed.exit_code == 0, listed.output
    _, _, body = get(dashboard, "/api/devices")
    served = {d["device"]: d["p99"] for d in body["devices"]}
    assert served == {d["device"]: d["p99"] for d in json.loads(listed.stdout)}


def test_series(dashboard):
    status, _, body = get(dashboard, "/api/series?fleet=lab&device=pi-1&minutes=15")
    assert status == 200
    assert (body["fleet"], body["device"], body["minutes"], body["now"]) == ("lab", "pi-1", 15, NOW)
    assert body["since"] == NOW - 900
    points = body["points"]
    assert len(points) == WINDOWS
    assert points[-1]["window_end"] == NOW - 5
    assert all(b["window_end"] - a["window_end"] == INTERVAL for a, b in itertools.pairwise(points))
    assert set(points[0]) == {"window_end", "requests_per_s", "p99", "error_rate", "drift"}
    assert all(20 < p["requests_per_s"] < 70 for p in points)
    _, _, five = get(dashboard, "/api/series?device=pi-1&minutes=5")
    assert len(five["points"]) == 30
    assert five["fleet"] is None
    _, _, drifting = get(dashboard, "/api/series?device=pi-2")
    assert [p["drift"] for p in drifting["points"]].index(True) == 70
    _, _, offline = get(dashboard, "/api/series?device=pi-3&minutes=1")
    assert offline["points"] == []
    _, _, other = get(dashboard, "/api/series?device=pi-1&fleet=prod")
    assert other["points"] == []


NAMES = "give 1 to 64 of A-Z a-z 0-9 . _ -"
MINUTES = "is not a whole number from 1 to 1440: give e.g. minutes=15"
EXAMPLE = "e.g. /api/series?device=pi-7&fleet=lab&minutes=15"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/api/series", f"/api/series needs the parameter device, the device's name: {EXAMPLE}"),
        ("/api/series?minutes=5&fleet=lab", f"/api/series needs the parameter device, the device's name: {EXAMPLE}"),
        ("/api/series?device=", f"device '' is not a device name: {NAMES}"),
        ("/api/series?device", f"device '' is not a device name: {NAMES}"),
        ("/api/series?device=pi 1", f"device 'pi 1' is not a device name: {NAMES}"),
        ("/api/series?device=" + "p" * 100, f"device '{'p' * 40}…' is not a device name: {NAMES}"),
        ("/api/series?device=pi-1&fleet=a/b", f"fleet 'a/b' is not a fleet name: {NAMES}"),
        ("/api/series?device=pi-1&fleet=", f"fleet '' is not a fleet name: {NAMES}"),
        ("/api/series?device=pi-1&minutes=0", f"minutes '0' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=", f"minutes '' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=1441", f"minutes '1441' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=-5", f"minutes '-5' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=15.0", f"minutes '15.0' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=ten", f"minutes 'ten' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=%C2%B2", f"minutes '²' {MINUTES}"),
        ("/api/series?device=pi-1&minutes=" + "9" * 5000, f"minutes '{'9' * 40}…' {MINUTES}"),
        ("/api/series?devce=pi-1", f"/api/series has no parameter 'devce': it takes device, fleet, minutes: {EXAMPLE}"),
        ("/api/series?device=pi-1&device=pi-2", "/api/series: device is given 2 times: give it once"),
        ("/api/series?=pi-1", f"/api/series has no parameter '': it takes device, fleet, minutes: {EXAMPLE}"),
        ("/api/devices?fleet=lab", "/api/devices has no parameter 'fleet': it takes no parameters"),
        ("/api/devices?minutes=5", "/api/devices has no parameter 'minutes': it takes no parameters"),
        ("/api/rollouts?device=pi-1", "/api/rollouts has no parameter 'device': it takes no parameters"),
    ],
)
def test_bad_queries_are_400s_that_say_what_to_give(dashboard, path, error):
    status, headers, body = get(dashboard, path.replace(" ", "%20"))
    assert (status, headers["Content-Type"]) == (400, "application/json")
    assert body == {"error": error}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
@pytest.mark.parametrize("path", ["/api/devices", "/api/series?device=pi-1", "/api/rollouts", "/", "/api/nothing"])
def test_other_methods_are_405s(dashboard, method, path):
    status, headers, body = get(dashboard, path, method=method)
    assert (status, headers["Allow"]) == (405, "GET")
    assert body == {"error": f"method '{method}' is not allowed: the dashboard answers GET only"}


def test_head_is_a_405_without_a_body(dashboard):
    status, headers, body = get(dashboard, "/api/devices", method="HEAD")
    assert (status, headers["Allow"], body) == (405, "GET", b"")


def test_rollouts(dashboard):
    status, _, body = get(dashboard, "/api/rollouts")
    assert status == 200
    assert body["now"] == NOW
    newest, older = body["rollouts"]
    assert (newest["fleet"], newest["id"], newest["command"], newest["last"]) == ("lab", "deploy-7", "deploy", NOW - 60)
    assert newest["model"] == {"name": "digits-cnn", "version": "1.1.0", "sha256": "9f" * 32}
    assert [(d["device"], d["status"]) for d in newest["devices"]] == [
        ("pi-1", "committed"),
        ("pi-2", "watching"),
        ("pi-3", "refused"),
    ]
    assert newest["devices"][2] == {
        "device": "pi-3",
        "status": "refused",
        "time": NOW - 295,
        "detail": "refused digits-cnn 1.1.0",
    }
    assert newest["finished"] == 2
    assert newest["counts"] == {"committed": 1, "refused": 1, "watching": 1}
    assert (older["id"], older["command"], older["model"], older["finished"]) == ("status-3", "status", None, 1)


def test_the_page(dashboard):
    status, headers, body = get(dashboard, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    text = body.decode()
    assert "<svg" not in text  # drawn by the page's own script
    assert "/api/devices" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    assert "https://" not in text


def test_unknown_paths_are_404s(dashboard):
    status, _, body = get(dashboard, "/api/nothing")
    assert status == 404
    assert "/api/devices" in body["error"]


def test_only_loopback_host_names_on_loopback(dashboard):
    port = dashboard.port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "127.0.0.2"):
        assert get(dashboard, "/api/devices", {"Host": host})[0] == 200, host
    for host in (f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", ""):
        status, _, body = get(dashboard, "/api/devices", {"Host": host})
        assert status == 403, host
        assert "loopback" in body["error"]


class BrokenStore:
    where = "broken"

    def summary(self):
        raise TelemetryError("cannot read telemetry from 'broken': disk on fire")

    def latest_events(self, *, commands):  # noqa: ARG002 (the store's signature)
        raise RuntimeError("a bug")


def test_store_errors_are_503s_and_bugs_500s(caplog):
    with Dashboard(BrokenStore(), DashboardSettings(port=0)) as broken:
        status, _, body = get(broken, "/api/devices")
        assert (status, body["error"]) == (503, "cannot read telemetry from 'broken': disk on fire")
        status, _, body = get(broken, "/api/rollouts")
        assert status == 500
        assert "a bug" not in body["error"]
    assert "a bug" in caplog.text


def test_a_taken_port_is_a_config_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = DashboardSettings(port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="give another --port"):
            Dashboard(BrokenStore(), settings).start()


def test_settings():
    assert DashboardSettings().loopback
    assert DashboardSettings(host="::1").loopback
    assert DashboardSettings(host="localhost").loopback
    assert not DashboardSettings(host="0.0.0.0").loopback  # noqa: S104
    assert not DashboardSettings(host="pi.example").loopback
    for bad in ({"port": 70000}, {"port": -1}, {"host": ""}, {"refresh_s": 0}):
        with pytest.raises(ConfigError):
            DashboardSettings(**bad)


def test_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    with Dashboard(BrokenStore(), DashboardSettings(host="::1", port=0)) as d:
        assert d.url == f"http://[::1]:{d.port}/"
        assert get(d, "/api/devices")[0] == 503


def test_postgres_answers_as_sqlite_does(fleet_db, postgres_url):
    fill(postgres_url)
    answers = []
    for url in (str(fleet_db), postgres_url):
        with (
            open_store(url, create=False) as store,
            Dashboard(store, DashboardSettings(port=0), clock=lambda: NOW) as d,
        ):
            answers.append([get(d, path)[2] for path in ("/api/devices", "/api/series?device=pi-2", "/api/rollouts")])
    assert answers[0] == answers[1]
