"""``edgekit fleet dashboard``: bad options are one line and an exit code; the real process serves and stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from tests.brokers import free_port

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--db", "{tmp}/missing.db"], 1, "no telemetry database at"),
        (["--db", "mysql://me:secret@db/x"], 2, "unknown scheme 'mysql'"),
        (["--db", "{tmp}/notes.db"], 1, "not a usable SQLite database"),
        (["--db", "{tmp}/empty.db"], 1, "is it a collect --db?"),
        (["--db", "{tmp}/fleet.db", "--port", "70000"], 2, "--port 70000 is not a TCP port"),
    ],
)
@pytest.mark.usefixtures("fleet_db")
def test_bad_options_are_one_line(tmp_path, args, code, words):
    (tmp_path / "notes.db").write_text("not a database " * 100)
    (tmp_path / "empty.db").write_bytes(b"")
    result = runner.invoke(app, ["fleet", "dashboard", *(a.replace("{tmp}", str(tmp_path)) for a in args)])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ")
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "secret" not in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_db_is_required():
    result = runner.invoke(app, ["fleet", "dashboard"])
    assert result.exit_code == 2
    assert "--db" in result.output


def test_serves_until_sigterm_and_warns_off_loopback(fleet_db):
    port = free_port()
    command = [sys.executable, "-m", "edgekit", "fleet", "dashboard", "--db", str(fleet_db)]
    proc = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--port", str(port)],  # noqa: S104 (the warning is the point)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stderr.readline() for _ in range(2)]
        assert "no authentication" in lines[0]
        assert f"serving the fleet dashboard of {fleet_db} at http://127.0.0.1:{port}/" in lines[1]
        url = f"http://127.0.0.1:{port}/api/devices"
        request = urllib.request.Request(url, headers={"Host": f"fleet.example:{port}"})  # any name off loopback
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own server)
            devices = json.loads(response.read())["devices"]
        assert [d["device"] for d in devices] == ["pi-1", "pi-2", "pi-3"]
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert stdout == ""
