"""``set-config`` and ``rebirth`` end to end: ``edgekit fleet set-config`` as a process, a real runtime process
and a Mosquitto of the test's own; the retained state, the events and the device's own deploy read back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
FLEET = "settings"
EDGEKIT = str(Path(sys.executable).parent / "edgekit")
SCHEMA = json.loads((ROOT / "docs" / "telemetry.schema.json").read_text())


class Watcher:
    """Every state and event message of the fleet, in order; publishes commands."""

    def __init__(self, port: int) -> None:
        self.states: list[dict] = []
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"edgekit/{FLEET}/+/state", qos=1)
        self.client.subscribe(f"edgekit/{FLEET}/+/events", qos=1)
        self.client.loop_start()

    def _message(self, _client, _userdata, message) -> None:
        doc = json.loads(message.payload)
        with self.lock:
            (self.states if message.topic.endswith("/state") else self.events).append(doc)

    def state(self) -> dict:
        with self.lock:
            return self.states[-1] if self.states else {}

    def statuses(self, command_id: str) -> list[str]:
        with self.lock:
            return [e["status"] for e in self.events if e["id"] == command_id]

    def event(self, command_id: str, status: str) -> dict:
        with self.lock:
            return next(e for e in self.events if e["id"] == command_id and e["status"] == status)

    def command(self, device: str, **doc) -> str:
        doc.setdefault("id", uuid.uuid4().hex)
        self.client.publish(f"edgekit/{FLEET}/{device}/cmd", json.dumps(doc), qos=1).wait_for_publish(10)
        return doc["id"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A key pair, and the digits MLP signed with it as 1.0.0 and 2.0.0."""
    folder = tmp_path_factory.mktemp("signed")
    private, public = generate_keypair(folder / "fleet")
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    options = {v: BundleOptions(name="digits-mlp", version=v, signing_key=private) for v in ("1.0.0", "2.0.0")}
    return public, {v: pack_source(str(DIGITS / "mlp.onnx"), folder, o, data).path for v, o in options.items()}


def start(bundle: Path, public: Path, broker, folder: Path) -> ServeProcess:
    args = [
        str(bundle),
        *("--port", "0", "--trust", str(public), "--mqtt", broker.url, "--fleet", FLEET, "--device", "pi-1"),
        *("--state-dir", str(folder / "pi-1"), "--mqtt-reconnect-max", "1", "--deploy-watch", "30"),
    ]
    server = ServeProcess(args, folder / f"pi-1-{time.monotonic_ns()}.log")
    server.wait_ready()
    return server


def set_config(broker, *pairs: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    command = [EDGEKIT, "fleet", "set-config", *pairs, "--broker", broker.url, "--fleet", FLEET]
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


def watched(watcher: Watcher, seconds: float) -> bool:
    state = watcher.state()
    return state.get("status") == "online" and state.get("config", {}).get("deploy_watch") == seconds


def test_set_config_is_applied_at_once_refused_whole_and_kept_across_a_restart(signed, mosquitto, tmp_path):
    public, bundles = signed
    watcher = Watcher(mosquitto.port)
    server = start(bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        wait_for(lambda: watched(watcher, 30.0), 20, "the state with the flag's deploy_watch", server.log)
        Draft202012Validator(SCHEMA).validate(watcher.state())

        done, result = set_config(mosquitto, "deploy_watch=0", "log_level=info")
        assert done.returncode == 0, done.stderr
        assert result is not None
        assert result["outcome"] == "completed"
        assert [(s["device"], s["status"]) for s in result["steps"]] == [("pi-1", "done")]
        assert result["steps"][0]["detail"] == "deploy_watch 30 -> 0; log_level warning -> info"
        wait_for(lambda: watched(watcher, 0.0), 20, "the state with the new deploy_watch")
        assert watcher.state()["config"]["log_level"] == "info"
        kept = (tmp_path / "pi-1" / "config.json").read_text()

        # the device's own deploy now watches for 0 s, not the flag's 30
        deploy = watcher.command("pi-1", command="deploy", source=str(bundles["2.0.0"]))
        wait_for(lambda: "committed" in watcher.statuses(deploy), 30, "the deploy to commit", server.log)
        assert watcher.event(deploy, "watching")["detail"] == "0 s"

        done, result = set_config(mosquitto, "deploy_watch=5", "colour=red", "max_error_rate=2")
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "pi-1 refused" in lines[0]
        assert result is not None
        refusal = result["steps"][0]["detail"]
        assert "'colour': not a setting" in refusal
        assert "max_error_rate 2 is not allowed: use a rate from 0 to 1" in refusal
        assert (tmp_path / "pi-1" / "config.json").read_text() == kept  # nothing written

        states = len(watcher.states)
        rebirth = watcher.command("pi-1", command="rebirth")
        wait_for(lambda: "done" in watcher.statuses(rebirth), 20, "the rebirth")
        wait_for(lambda: len(watcher.states) > states, 20, "the state published again")
        assert watcher.state()["config"]["deploy_watch"] == 0  # the refused change changed nothing
    finally:
        server.stop()

    server = start(bundles["1.0.0"], public, mosquitto, tmp_path)  # the same flags: --deploy-watch 30
    try:
        wait_for(lambda: watched(watcher, 0.0), 20, "the kept deploy_watch after the restart", server.log)
        state = watcher.state()
        assert state["config"]["log_level"] == "info"
        assert state["model"]["version"] == "2.0.0"  # the committed deploy serves after the restart
        Draft202012Validator(SCHEMA).validate(state)
        said = "win over the command line: deploy_watch 30 -> 0; log_level warning -> info"
        wait_for(lambda: said in server.stderr(), 10, "the start to say what the kept settings override", server.log)
    finally:
        server.stop()
        watcher.close()
