"""``set-config`` and ``rebirth`` end to end: ``edgekit fleet set-config`` as a process, a real runtime process
and a Mosquitto of the test's own; the retained state, the events and the device's own deploy read back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.integration.fleet_rig import FleetRecorder, device_args, signed_digits
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
FLEET = "settings"
EDGEKIT = str(Path(sys.executable).parent / "edgekit")
SCHEMA = json.loads((ROOT / "docs" / "telemetry.schema.json").read_text())


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A key pair, and the digits MLP signed with it as 1.0.0 and 2.0.0."""
    return signed_digits(tmp_path_factory.mktemp("signed"))


def start(bundle: Path, public: Path, broker, folder: Path) -> ServeProcess:
    args = device_args(bundle, public, broker, FLEET, "pi-1", folder, "--deploy-watch", "30")
    server = ServeProcess(args, folder / f"pi-1-{time.monotonic_ns()}.log")
    server.wait_ready()
    return server


def set_config(broker, key: Path, *pairs: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    command = [EDGEKIT, "fleet", "set-config", *pairs, "--broker", broker.url, "--fleet", FLEET]
    command += ["--sign-key", str(key)]
    done = subprocess.run(
        [*command, "--devices", "pi-1", "--timeout", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        return done, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done, None


def watched(watcher: FleetRecorder, seconds: float) -> bool:
    state = watcher.states.get("pi-1", {})
    return state.get("status") == "online" and state.get("config", {}).get("deploy_watch") == seconds


def test_set_config_is_applied_at_once_refused_whole_and_kept_across_a_restart(signed, mosquitto, tmp_path):
    public, bundles = signed
    key = public.with_suffix(".key")
    watcher = FleetRecorder(mosquitto.port, FLEET, sign_key=key)
    server = start(bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        wait_for(lambda: watched(watcher, 30.0), 20, "the state with the flag's deploy_watch", server.log)
        Draft202012Validator(SCHEMA).validate(watcher.states.get("pi-1", {}))

        done, result = set_config(mosquitto, key, "deploy_watch=0", "log_level=info")
        assert done.returncode == 0, done.stderr
        assert result is not None
        assert result["outcome"] == "completed"
        assert [(s["device"], s["status"]) for s in result["steps"]] == [("pi-1", "done")]
        assert result["steps"][0]["detail"] == "deploy_watch 30 -> 0; log_level warning -> info"
        wait_for(lambda: watched(watcher, 0.0), 20, "the state with the new deploy_watch")
        assert watcher.states.get("pi-1", {})["config"]["log_level"] == "info"
        kept = (tmp_path / "pi-1" / "config.json").read_text()

        # the device's own deploy now watches for 0 s, not the flag's 30
        deploy = watcher.deploy("pi-1", bundles["2.0.0"])
        wait_for(lambda: "committed" in watcher.statuses(deploy), 30, "the deploy to commit", server.log)
        assert watcher.event(deploy, "watching")["detail"] == "0 s"

        done, result = set_config(mosquitto, key, "deploy_watch=5", "colour=red", "max_error_rate=2")
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "pi-1 refused" in lines[0]
        assert result is not None
        refusal = result["steps"][0]["detail"]
        assert "'colour': not a setting" in refusal
        assert "max_error_rate 2 is not allowed: use a rate from 0 to 1" in refusal
        assert (tmp_path / "pi-1" / "config.json").read_text() == kept  # nothing written

        states = len(watcher.docs("state", "pi-1"))
        rebirth = watcher.command("pi-1", command="rebirth")
        wait_for(lambda: "done" in watcher.statuses(rebirth), 20, "the rebirth")
        wait_for(lambda: len(watcher.docs("state", "pi-1")) > states, 20, "the state published again")
        assert watcher.states.get("pi-1", {})["config"]["deploy_watch"] == 0  # the refused change changed nothing
    finally:
        server.stop()

    server = start(bundles["1.0.0"], public, mosquitto, tmp_path)  # the same flags: --deploy-watch 30
    try:
        wait_for(lambda: watched(watcher, 0.0), 20, "the kept deploy_watch after the restart", server.log)
        state = watcher.states.get("pi-1", {})
        assert state["config"]["log_level"] == "info"
        assert state["model"]["version"] == "2.0.0"  # the committed deploy serves after the restart
        Draft202012Validator(SCHEMA).validate(state)
        said = "win over the command line: deploy_watch 30 -> 0; log_level warning -> info"
        wait_for(lambda: said in server.stderr(), 10, "the start to say what the kept settings override", server.log)
    finally:
        server.stop()
        watcher.close()
