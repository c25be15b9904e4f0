"""``edgekit telemetry show`` through typer's runner, and ``collect`` as a real process stopped by SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.telemetry.messages import parse_message
from edgekit.telemetry.store import open_store
from tests.edgekit.telemetry.sample import encode, publisher, state, topic, wait_until, window

runner = CliRunner()


@pytest.fixture
def filled(tmp_path):
    path = tmp_path / "telemetry.db"
    rows = []
    for seq in (1, 2, 4):
        rows.extend(parse_message(topic(), encode(window(seq, drift=seq == 4)), received=0.0).windows)
    online = parse_message(topic("state"), encode(state("online")), received=0.0).state
    quiet = parse_message(topic("state", device="pi-9"), encode(state("offline", device="pi-9")), received=0.0).state
    with open_store(path) as store:
        store.add_windows(rows, [online, quiet])
    return path


def test_show_prints_a_line_per_device(filled):
    result = runner.invoke(app, ["telemetry", "show", "--db", str(filled)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (pi7,) = [line for line in lines if "pi-7" in line]
    for cell in ("lab", "online", "digits-cnn 1.0.0", "360", "6 (1.7%)", "4.7", "yes", "2026-11-18 11:07:20", "1"):
        assert cell in pi7
    (pi9,) = [line for line in lines if "pi-9" in line]
    assert "offline" in pi9


def test_show_json(filled):
    result = runner.invoke(app, ["telemetry", "show", "--db", f"sqlite:///{filled}", "--json"])
    assert result.exit_code == 0, result.output
    devices = json.loads(result.stdout)["devices"]
    assert [d["device"] for d in devices] == ["pi-7", "pi-9"]
    pi7 = devices[0]
    assert (pi7["windows"], pi7["requests"], pi7["errors"], pi7["gaps"], pi7["drift"]) == (3, 360, 6, 1, True)
    assert pi7["error_rate"] == pytest.approx(6 / 360)
    assert pi7["last_seen"] == 1795000040.0
    assert devices[1]["windows"] == 0


def test_show_on_an_empty_database(tmp_path):
    open_store(tmp_path / "empty.db").close()
    result = runner.invoke(app, ["telemetry", "show", "--db", str(tmp_path / "empty.db")])
    assert result.exit_code == 0
    assert "no devices" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["show", "--db", "missing.db"], 1, "no telemetry database at 'missing.db'"),
        (["show", "--db", "mysql://db/x"], 2, "unknown scheme 'mysql'"),
        (["collect", "--broker", "http://localhost:1883"], 2, "is not a broker URL"),
        (["collect", "--broker", "mqtt://localhost", "--db", "redis://x"], 2, "unknown scheme"),
        (["collect", "--broker", "mqtt://localhost", "--fleet", "a/b"], 2, "--fleet"),
        (["collect", "--broker", "mqtt://localhost", "--password-file", "nope.txt"], 2, "--password-file nope.txt"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(args, code, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["telemetry", *args])
    assert result.exit_code == code, result.output
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "telemetry.db").exists()


def test_collect_runs_until_sigterm(mosquitto, tmp_path):
    db = tmp_path / "fleet.db"
    cmd = [sys.executable, "-m", "edgekit", "telemetry", "collect", "--broker", mosquitto.url, "--db", str(db)]
    proc = subprocess.Popen(
        [*cmd, "--client-id", "cli-test", "--fleet", "lab"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen: list[str] = []
    try:
        wait_until(lambda: _read(lines, seen) and any("subscribed to" in line for line in seen), 20, "a subscription")
        with publisher(mosquitto) as device:
            for seq in range(1, 6):
                device.window(seq)
            device.window(1)
        wait_until(lambda: _stored(db) == 5, what="5 windows in the database")
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=20)
    _read(lines, seen)
    assert proc.returncode == 0, "".join(seen)
    assert stdout.strip() == (
        "stopped: 6 messages, 5 windows stored, 1 duplicates, 0 rejected (0 speaking for another device), 0 states,"
        " 0 resend requests for 0 missing windows"
    )
    assert any("collecting lab from mqtt://127.0.0.1" in line and "as cli-test" in line for line in seen)
    assert not any("Traceback" in line for line in seen)


def _read(lines, seen):
    while not lines.empty():
        seen.append(lines.get_nowait())
    return True


def _stored(db):
    with open_store(db, create=False) as store:
        found = store.summary()
    return found[0].windows if found else 0
