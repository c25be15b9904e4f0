"""Issue 7's operator CLI, end to end: ``edgekit fleet deploy`` as a process, three real runtime processes, a
Mosquitto of the module's own, and a plain MQTT client that records every command and event in the order the
broker delivered them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source
from tests.brokers import Mosquitto
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess
from tests.runtime.tamper import unsigned

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
FLEET = "operator"
NAMES = ("op-1", "op-2", "op-3")
EDGEKIT = str(Path(sys.executable).parent / "edgekit")


class Recorder:
    """Every command, event and state of the fleet, in the order they arrived."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, str, dict]] = []  # (kind, device, doc)
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"edgekit/{FLEET}/+/+", qos=1)
        self.client.loop_start()

    def _message(self, _client, _userdata, message) -> None:
        _, _, device, kind = message.topic.split("/")
        with self.lock:
            self.seen.append((kind, device, json.loads(message.payload)))

    def online(self) -> bool:
        with self.lock:
            latest = {device: doc.get("status") for kind, device, doc in self.seen if kind == "state"}
        return all(latest.get(name) == "online" for name in NAMES)

    def index(self, kind: str, device: str, *, id_prefix: str, status: str | None = None) -> list[int]:
        with self.lock:
            return [
                i
                for i, (k, d, doc) in enumerate(self.seen)
                if k == kind
                and d == device
                and str(doc.get("id", "")).startswith(id_prefix)
                and (status is None or doc.get("status") == status)
            ]

    def events(self, id_prefix: str) -> list[dict]:
        with self.lock:
            return [doc for k, _, doc in self.seen if k == "events" and str(doc.get("id")).startswith(id_prefix)]

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
    bundles = {v: pack_source(str(DIGITS / "mlp.onnx"), folder, o, data).path for v, o in options.items()}
    return public, bundles


@pytest.fixture(scope="module")
def fleet(signed, tmp_path_factory):
    """A broker, three devices of group ``lab`` serving 1.0.0, and a recorder: (broker, recorder)."""
    public, bundles = signed
    folder = tmp_path_factory.mktemp("operator")
    broker = Mosquitto(folder / "broker")
    broker.start()
    recorder = Recorder(broker.port)
    devices = []
    try:
        for name in NAMES:
            args = [
                str(bundles["1.0.0"]),
                *("--port", "0", "--trust", str(public), "--mqtt", broker.url, "--fleet", FLEET, "--device", name),
                *("--state-dir", str(folder / name), "--group", "lab", "--mqtt-reconnect-max", "1"),
                *("--deploy-watch", "1"),
            ]
            devices.append(ServeProcess(args, folder / f"{name}.log"))
        for device in devices:
            device.wait_ready()
        wait_for(recorder.online, 20, "three devices online")
        yield broker, recorder
    finally:
        for device in devices:
            device.stop()
        recorder.close()
        broker.stop()


def edgekit_deploy(broker, bundle, *extra) -> tuple[subprocess.CompletedProcess, dict | None]:
    command = [EDGEKIT, "fleet", "deploy", str(bundle), "--broker", broker.url, "--fleet", FLEET, "--json", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = None
    return done, result


def test_deploy_goes_to_the_canary_first_then_to_the_rest(signed, fleet):
    _, bundles = signed
    broker, recorder = fleet
    done, result = edgekit_deploy(broker, bundles["2.0.0"], "--canary", "34%", "--timeout", "60")
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
    assert min(sent) > max(c[0] for c in committed), "op-3 got its command before the canary committed"
    wait_for(lambda: all(_version(recorder, n) == "2.0.0" for n in NAMES), 20, "the new version in the states")


def _version(recorder: Recorder, device: str) -> str | None:
    with recorder.lock:
        states = [doc for kind, d, doc in recorder.seen if kind == "state" and d == device]
    return states[-1].get("model", {}).get("version") if states else None


def test_a_refused_canary_stops_the_rollout(signed, fleet, tmp_path):
    _, bundles = signed
    broker, recorder = fleet
    bad = unsigned(bundles["2.0.0"], tmp_path / "unsigned.edgebundle")
    started = time.time()
    done, result = edgekit_deploy(broker, bad, "--canary", "34%", "--timeout", "30")
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
    broker, recorder = fleet
    done, result = edgekit_deploy(
        broker, bundles["1.0.0"], "--serve", "127.0.0.1:0", "--group", "lab", "--canary", "50%", "--timeout", "60"
    )
    assert done.returncode == 0, done.stderr
    assert result is not None
    assert result["source"].startswith("http://127.0.0.1:")
    assert result["source"].endswith(f"{result['bundle']['sha256']}.edgebundle")
    assert result["canary"] == ["op-1", "op-2"]
    assert {s["device"]: s["status"] for s in result["steps"]} == dict.fromkeys(NAMES, "committed")
    received = [e for e in recorder.events(result["id"]) if e["status"] == "received"]
    assert len(received) == 3
    assert all(e["detail"] == result["source"] for e in received)
