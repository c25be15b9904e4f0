"""Issue 7's operator CLI, end to end: ``edgekit fleet deploy --sign-key`` as a process, three real runtime
processes, a Mosquitto of the module's own, and a plain MQTT client that records every command and event in the
order the broker delivered them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit_runtime.fleet.signed_command import SCHEMA
from tests.brokers import Mosquitto
from tests.integration.fleet_rig import FleetRecorder, device_args, signed_digits
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess
from tests.runtime.tamper import unsigned

FLEET = "operator"
NAMES = ("op-1", "op-2", "op-3")
EDGEKIT = str(Path(sys.executable).parent / "edgekit")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A key pair, and the digits MLP signed with it as 1.0.0, 2.0.0 and 3.0.0."""
    return signed_digits(tmp_path_factory.mktemp("signed"), ("1.0.0", "2.0.0", "3.0.0"))


@pytest.fixture(scope="module")
def fleet(signed, tmp_path_factory):
    """A broker, three devices of group ``lab`` serving 1.0.0, and a recorder: (broker, recorder, signing key)."""
    public, bundles = signed
    folder = tmp_path_factory.mktemp("operator")
    broker = Mosquitto(folder / "broker")
    broker.start()
    recorder = FleetRecorder(broker.port, FLEET)
    devices = []
    try:
        for name in NAMES:
            args = device_args(
                bundles["1.0.0"], public, broker, FLEET, name, folder, "--group", "lab", "--deploy-watch", "1"
            )
            devices.append(ServeProcess(args, folder / f"{name}.log"))
        for device in devices:
            device.wait_ready()
        recorder.wait_online(*NAMES)
        yield broker, recorder, public.with_suffix(".key")
    finally:
        for device in devices:
            device.stop()
        recorder.close()
        broker.stop()


def edgekit_deploy(broker, key, bundle, *extra) -> tuple[subprocess.CompletedProcess, dict | None]:
    command = [EDGEKIT, "fleet", "deploy", str(bundle), "--broker", broker.url, "--fleet", FLEET, "--json", *extra]
    command += ["--sign-key", str(key)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = None
    return done, result


def test_deploy_goes_to_the_canary_first_then_to_the_rest(signed, fleet):
    _, bundles = signed
    broker, recorder, key = fleet
    done, result = edgekit_deploy(broker, key, bundles["2.0.0"], "--canary", "34%", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert result is not None
    assert result["outcome"] == "completed"
    assert result["canary"] == ["op-1", "op-2"]  # ceil(0.34 * 3)
    assert result["rest"] == ["op-3"]
    assert {s["device"]: s["status"] for s in result["steps"]} == dict.fromkeys(NAMES, "committed")
    prefix = result["id"]
    committed = [recorder.index("events", n, id_prefix=prefix, status="committed") for n in ("op-1", "op-2")]
    assert all(committed)
    sent = recorder.index("cmd", "op-3", id_prefix=prefix)
    assert sent, "op-3 got no command"
    assert all(doc["envelope"]["schema"] == SCHEMA for doc in recorder.docs("cmd", id_prefix=prefix))  # signed
    assert min(sent) > max(c[0] for c in committed), "op-3 got its command before the canary committed"
    wait_for(lambda: all(recorder.version(n) == "2.0.0" for n in NAMES), 20, "the new version in the states")


def test_a_refused_canary_stops_the_rollout(signed, fleet, tmp_path):
    _, bundles = signed
    broker, recorder, key = fleet
    bad = unsigned(bundles["2.0.0"], tmp_path / "unsigned.edgebundle")
    started = time.time()
    done, result = edgekit_deploy(broker, key, bad, "--canary", "34%", "--timeout", "30")
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: rollout ")
    assert "aborted" in lines[0]
    assert "op-1 refused" in lines[0]
    assert result is not None
    assert result["outcome"] == "aborted"
    assert result["canary"] == ["op-1", "op-2"]
    prefix = result["id"]
    assert recorder.index("events", "op-1", id_prefix=prefix, status="refused")
    assert not recorder.index("cmd", "op-3", id_prefix=prefix), "op-3 was sent the refused bundle"
    assert time.time() - started < 30


def test_serve_mode_devices_fetch_over_http_from_the_cli(signed, fleet):
    _, bundles = signed
    broker, recorder, key = fleet
    done, result = edgekit_deploy(
        broker, key, bundles["3.0.0"], "--serve", "127.0.0.1:0", "--group", "lab", "--canary", "50%", "--timeout", "60"
    )
    assert done.returncode == 0, done.stderr
    assert result is not None
    assert result["source"].startswith("http://127.0.0.1:")
    assert result["source"].endswith(f"{result['bundle']['sha256']}.edgebundle")
    assert result["canary"] == ["op-1", "op-2"]
    assert {s["device"]: s["status"] for s in result["steps"]} == dict.fromkeys(NAMES, "committed")
    received = [e for e in recorder.events_for(result["id"]) if e["status"] == "received"]
    assert len(received) == 3
    assert all(e["detail"] == result["source"] for e in received)
