"""Issue 17's attacks, end to end: a real device on a broker shared with strangers, attacked from every side.

One ``edgekit-runtime serve`` process (``pi-1``, group ``lab``) runs on a Mosquitto configured by nothing but what
``edgekit fleet provision`` wrote (one account per device, the ACL); it trusts the fleet owner's key, sends
telemetry to a real collector, and takes commands from the operator's account. The attackers: an anonymous
client; ``pi-2``, another device of the fleet whose password was stolen; whoever holds the operator's broker
password but not the owner's signing key; a signed bundle built elsewhere (a build machine that signs whatever it
is given); and any HTTP client of the device. After each attack the device must still serve its model over HTTP and
still take a command signed by the owner (:func:`still_serving_and_steerable`).

The tests run in order on the one device (a module's fixture): each starts from the state the last left.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair, load_private_key
from edgekit.bundle.source import PackData, pack_source
from edgekit.fleet.broker_accounts import Device
from edgekit.fleet.bundle_mqtt import PublishedBundle
from edgekit.fleet.bundle_source import LocalBundle, check_bundle
from edgekit.fleet.link import FleetLink
from edgekit.fleet.provision import ProvisionRequest, provision
from edgekit.telemetry.collector import Collector, CollectorSettings
from edgekit.telemetry.store import open_store
from edgekit_runtime.fleet.signed_command import seal
from edgekit_runtime.mqtt.settings import MqttSettings
from tests.brokers import Mosquitto, free_port
from tests.edgekit.telemetry.sample import window
from tests.integration.broker_rig import Account, collector_settings, secret
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess
from tests.runtime.unsafe_models import SECRET, STOLEN_FILE, leak_golden, leaking_model, manifest_doc, signed

if TYPE_CHECKING:
    from collections.abc import Iterator

FLEET = "field"
DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
FINAL = {"committed", "rolled_back", "refused", "failed", "done"}
_IDS = itertools.count()


class Field:
    """The device, its broker and collector, the operator's signed link, and the owner's bundles."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        private, self.public = generate_keypair(folder / "owner")
        self.owner = load_private_key(private)
        data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
        self.bundles = {
            version: pack_source(
                str(DIGITS / "mlp.onnx"),
                folder / version,
                BundleOptions(name="digits-mlp", version=version, signing_key=private),
                data,
            ).path
            for version in ("0.9.0", "1.0.0", "2.0.0")
        }
        self.private_path = private
        port = free_port()
        request = ProvisionRequest(
            fleet=FLEET, devices=(Device("pi-1", ("lab",)), Device("pi-2")), port=port, bind="127.0.0.1"
        )
        self.provisioned = provision(folder / "provisioned", request)
        self.broker = Mosquitto(folder / "broker", port, include=self.provisioned.folder)
        self.workdir = folder / "workdir"  # the device's working directory: a secret lies beside it
        self.workdir.mkdir()
        (self.workdir / STOLEN_FILE).write_bytes(SECRET)
        self.state = folder / "state"
        self.device: ServeProcess | None = None
        self.collector: Collector | None = None
        self.link: FleetLink | None = None
        self.events: list[dict[str, Any]] = []

    def start(self) -> None:
        self.broker.start()
        self.store = open_store(self.folder / "telemetry.db")
        self.collector = Collector(collector_settings(self.broker, self.provisioned), self.store)
        self.collector.start()
        assert self.collector.wait_ready(10)
        self.start_device()
        settings = CollectorSettings(
            self.broker.url, username="operator", password=secret(self.provisioned, "operator"), fleet=FLEET
        )
        self.link = FleetLink(settings, sign_key=self.owner).__enter__()
        wait_for(lambda: self.link.states.get("pi-1") is not None, 20, "pi-1's retained state")

    def start_device(self) -> None:
        args = [
            str(self.bundles["1.0.0"]),
            *("--port", "0", "--trust", str(self.public), "--state-dir", str(self.state)),
            *("--mqtt", self.broker.url, "--mqtt-username", "pi-1"),
            *("--mqtt-password-file", str(self.provisioned.password_file("pi-1"))),
            *("--fleet", FLEET, "--device", "pi-1", "--group", "lab", "--mqtt-reconnect-max", "1"),
            *("--deploy-watch", "0", "--telemetry-interval", "0.5", "--log-level", "info"),
        ]
        self.device = ServeProcess(args, self.folder / f"device-{time.monotonic_ns()}.log", cwd=self.workdir)
        self.device.wait_ready()

    def stop(self) -> None:
        if self.link is not None:
            self.link.close()
        if self.device is not None:
            self.device.stop()
        if self.collector is not None:
            self.collector.stop()
            self.store.close()
        self.broker.stop()

    # -- the operator's side --

    def command(self, body: dict[str, Any], target: str = "pi-1", *, payload: bytes | None = None) -> dict[str, Any]:
        """Send ``body`` signed by the owner (or ``payload`` as it is) and wait for its final event."""
        assert self.link is not None
        command_id = body.get("id") or f"field-{next(_IDS)}"
        if payload is None:
            self.link.command(target, {**body, "id": command_id})
        else:
            self.link.publish([(f"edgekit/{FLEET}/{target}/cmd", payload)], what="a raw command")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            message = self.link.next_message(0.5)
            if message is None or message.kind != "events":
                continue
            self.events.append(message.doc)
            if message.doc.get("id") == command_id and message.doc.get("status") in FINAL:
                return message.doc
        pytest.fail(f"no final event for {command_id}: {self.device.stderr() if self.device else ''}")

    def deploy(self, bundle: Path, **flags: Any) -> dict[str, Any]:
        """A signed deploy of ``bundle`` over MQTT chunks, as ``edgekit fleet deploy`` sends it."""
        assert self.link is not None
        data = bundle.read_bytes()  # not check_bundle: an attacker's bundle need not pass the operator's checks
        local = LocalBundle(bundle, "?", "?", hashlib.sha256(data).hexdigest(), len(data))
        with PublishedBundle(self.link, local, 64 * 1024) as source:
            body = {"command": "deploy", "source": source, "sha256": local.sha256, "size": local.size, **flags}
            return self.command(body)

    def serving(self) -> str:
        """The version the device answers with, over HTTP (and a prediction that works)."""
        assert self.device is not None
        features = [[0.0] * 64]
        response = httpx.post(f"{self.device.url}/predict", json={"features": features}, timeout=10)
        assert response.status_code == 200, response.text
        return str(httpx.get(f"{self.device.url}/v2/models/digits-mlp", timeout=10).json()["versions"][0])


@pytest.fixture(scope="module")
def field(tmp_path_factory) -> Iterator[Field]:
    made = Field(tmp_path_factory.mktemp("field"))
    made.start()
    yield made
    made.stop()


def still_serving_and_steerable(field: Field, version: str) -> None:
    """The device serves ``version`` and takes a command the owner signs."""
    assert field.serving() == version
    assert field.command({"command": "status"})["status"] == "done"


def test_no_stranger_on_the_broker_can_command_the_device(field):
    anonymous = Account(field.broker, None)
    thief = Account(
        field.broker,
        MqttSettings(field.broker.url, username="pi-2", password_file=field.provisioned.password_file("pi-2")),
    )
    try:
        assert anonymous.connect().is_failure
        assert thief.connect() == "Success"
        deploy = {"id": "x1", "command": "deploy", "source": "http://evil.invalid/b", "sha256": "a" * 64, "size": 1}
        for topic in ("pi-1/cmd", "@all/cmd", "@lab/cmd"):
            assert str(thief.publish(f"edgekit/{FLEET}/{topic}", deploy)) == "Not authorized"
    finally:
        anonymous.close()
        thief.close()
    still_serving_and_steerable(field, "1.0.0")


@pytest.mark.parametrize("how", ["unsigned", "a stranger's key", "another device's command"])
def test_commands_the_owner_did_not_sign_for_this_device_are_refused(field, how):
    """Whoever holds the operator's broker password, but not the owner's key."""
    local = check_bundle(field.bundles["2.0.0"])
    slug = {"unsigned": "unsigned", "a stranger's key": "stranger", "another device's command": "moved"}[how]
    body = {"id": f"evil-{slug}", "command": "deploy", "source": "http://127.0.0.1:9/b.edgebundle"}
    body |= {"sha256": local.sha256, "size": local.size}
    payload = {
        "unsigned": orjson.dumps(body),
        "a stranger's key": seal(body, Ed25519PrivateKey.generate(), fleet=FLEET, target="pi-1"),
        "another device's command": seal(body, field.owner, fleet=FLEET, target="pi-2"),
    }[how]
    event = field.command(body, payload=payload)
    assert event["status"] == "refused"
    assert {
        "unsigned": "commands must be signed",
        "a stranger's key": "does not trust",
        "another device's command": "cannot be moved",
    }[how] in event["detail"]
    still_serving_and_steerable(field, "1.0.0")


def test_a_replayed_command_and_an_old_one_are_refused(field):
    body = {"id": "once", "command": "status"}
    payload = seal(body, field.owner, fleet=FLEET, target="pi-1")
    assert field.command(body, payload=payload)["status"] == "done"
    assert "taken before" in field.command(body, payload=payload)["detail"]
    old = {"id": "old", "command": "status"}
    stale = seal(old, field.owner, fleet=FLEET, target="pi-1", now=time.time() - 3600)
    assert "expired" in field.command(old, payload=stale)["detail"]
    still_serving_and_steerable(field, "1.0.0")


def test_a_retained_command_runs_once_across_a_restart(field):
    body = {"id": "retained-status", "command": "status"}
    payload = seal(body, field.owner, fleet=FLEET, target="@all")
    assert field.link is not None
    field.link.publish([(f"edgekit/{FLEET}/@all/cmd", payload)], retain=True, what="a retained command")
    try:
        wait_for(lambda: "done" in _statuses(field, "retained-status"), 20, "it ran")
        assert field.device is not None
        field.device.stop()
        field.start_device()
        wait_for(lambda: "refused" in _statuses(field, "retained-status"), 30, "it refused after the restart")
    finally:
        field.link.publish([(f"edgekit/{FLEET}/@all/cmd", b"")], retain=True, what="clearing it")
    assert _statuses(field, "retained-status") == ["done", "refused"]
    assert "taken before" in [e for e in field.events if e.get("id") == "retained-status"][-1]["detail"]
    still_serving_and_steerable(field, "1.0.0")


def _statuses(field: Field, command_id: str) -> list[str]:
    """The final statuses of ``command_id`` so far, with the events that have arrived since the last look."""
    assert field.link is not None
    while (message := field.link.next_message(0.2)) is not None:
        if message.kind == "events":
            field.events.append(message.doc)
    return [e["status"] for e in field.events if e.get("id") == command_id and e["status"] in FINAL]


def test_a_downgrade_is_refused_unless_the_owner_says_so(field):
    event = field.deploy(field.bundles["0.9.0"])
    assert event["status"] == "refused"
    assert "older than digits-mlp 1.0.0 serving now" in event["detail"]
    still_serving_and_steerable(field, "1.0.0")


def test_a_signed_bundle_whose_model_reads_a_device_file_is_refused(field):
    """The build machine signs a model that keeps a tensor in 'secret.txt': relative to the device's directory."""
    model = leaking_model().SerializeToString()
    golden = leak_golden().to_bytes()
    doc = manifest_doc(model, golden) | {"name": "digits-mlp", "version": "9.0.0"}
    bundle = signed(
        field.folder / "leak-9.0.0.edgebundle", {"model.onnx": model, "golden.npz": golden}, doc, field.private_path
    )
    event = field.deploy(bundle, allow_schema_change=True)
    assert event["status"] == "refused"
    assert "external file 'secret.txt', outside the bundle" in event["detail"]
    still_serving_and_steerable(field, "1.0.0")


def test_a_signed_but_malformed_manifest_is_refused_in_one_line(field):
    model = (DIGITS / "mlp.onnx").read_bytes()
    golden = leak_golden().to_bytes()
    doc = manifest_doc(model, golden) | {"name": "digits-mlp", "version": "9.1.0", "models": []}
    bundle = signed(
        field.folder / "empty-9.1.0.edgebundle", {"model.onnx": model, "golden.npz": golden}, doc, field.private_path
    )
    event = field.deploy(bundle)
    assert event["status"] == "refused"
    assert "models" in event["detail"]
    assert "Traceback" not in event["detail"]
    still_serving_and_steerable(field, "1.0.0")


def test_set_config_out_of_range_is_refused_and_the_agent_lives_on(field):
    event = field.command({"command": "set-config", "config": {"min_requests": 1e30}})
    assert event["status"] == "refused"
    assert "min_requests" in event["detail"]
    assert field.device is not None
    field.device.stop()  # what the old build could not survive: a start with what was sent
    field.start_device()
    still_serving_and_steerable(field, "1.0.0")


class Endless(BaseHTTPRequestHandler):
    """Streams zeros with no length, for ever: how much was sent is counted."""

    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        block = bytes(1 << 16)
        try:
            for _ in range(1 << 15):  # 2 GiB at most: the test stops long before
                self.wfile.write(block)
                Endless.sent += len(block)
        except OSError:
            return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""


def test_an_endless_download_is_cut_at_the_signed_size_and_leaves_nothing(field):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        size = 4 << 20
        body = {"command": "deploy", "source": f"http://127.0.0.1:{server.server_address[1]}/huge.edgebundle"}
        event = field.command(body | {"sha256": "b" * 64, "size": size})
    finally:
        server.shutdown()
        server.server_close()
    assert event["status"] == "failed"
    assert f"more than the {size} bytes the command signed" in event["detail"]
    assert Endless.sent < size + (16 << 20)  # what socket buffers held, not the 2 GiB on offer
    leftovers = [p.name for p in (field.state / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    still_serving_and_steerable(field, "1.0.0")


def test_a_path_on_the_device_and_a_huge_source_are_refused_unread(field):
    shadow = field.command({"command": "deploy", "source": "/etc/shadow", "sha256": "c" * 64, "size": 1000})
    assert shadow["status"] == "refused"
    assert "never taken from the network" in shadow["detail"]
    events_before = len(field.events)
    big = {"id": "big", "command": "deploy", "source": "http://x/" + "a" * (50 << 20), "sha256": "c" * 64, "size": 1}
    assert field.link is not None
    field.link.publish([(f"edgekit/{FLEET}/pi-1/cmd", seal(big, field.owner, fleet=FLEET, target="pi-1"))], 60)
    still_serving_and_steerable(field, "1.0.0")
    assert all(e.get("id") != "big" for e in field.events[events_before:])  # dropped unread: no event either
    assert (field.state / "models" / "state.json").stat().st_size < 10_000


def test_telemetry_for_another_device_is_refused_or_rejected(field):
    assert field.collector is not None
    thief = Account(
        field.broker,
        MqttSettings(field.broker.url, username="pi-2", password_file=field.provisioned.password_file("pi-2")),
    )
    try:
        assert thief.connect() == "Success"
        spoof = window(10**9, fleet=FLEET, device="pi-1")
        assert str(thief.publish(f"edgekit/{FLEET}/pi-1/telemetry", spoof)) == "Not authorized"
        spoofed_before = field.collector.counts.spoofed
        assert str(thief.publish(f"edgekit/{FLEET}/pi-2/telemetry", spoof)) == "Success"
        wait_for(lambda: field.collector.counts.spoofed == spoofed_before + 1, 10, "the spoof rejected")
    finally:
        thief.close()
    stored = _stored_seqs(field)
    wait_for(lambda: len(_stored_seqs(field)) > len(stored) + 2, 20, "pi-1's real windows still stored")
    assert max(_stored_seqs(field)) < 10**9
    still_serving_and_steerable(field, "1.0.0")


def _stored_seqs(field: Field) -> list[int]:
    with sqlite3.connect(field.folder / "telemetry.db", timeout=5) as db:
        rows = db.execute("SELECT seq FROM telemetry WHERE fleet = ? AND device = ?", (FLEET, "pi-1")).fetchall()
    return [int(seq) for (seq,) in rows]


def test_http_attacks_give_4xx_never_5xx(field):
    assert field.device is not None
    host, port = field.device.url.removeprefix("http://").rsplit(":", 1)
    deep = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1] * 70, "data": [0.0]}]}
    response = httpx.post(f"{field.device.url}/v2/models/digits-mlp/infer", json=deep, timeout=10)
    assert 400 <= response.status_code < 500
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/v2/models/digits-mlp/infer")
    conn.putheader("Inference-Header-Content-Length", "\uff11\uff12".encode())  # full-width digits, UTF-8: not ASCII
    conn.putheader("Content-Length", "2")
    conn.endheaders(b"{}")
    assert 400 <= conn.getresponse().status < 500
    conn.close()
    idle = [socket.create_connection((host, int(port))) for _ in range(200)]  # held open, never sending
    try:
        still_serving_and_steerable(field, "1.0.0")
    finally:
        for sock in idle:
            sock.close()


def test_the_owner_still_steers_the_device_after_all_of_it(field):
    event = field.deploy(field.bundles["2.0.0"])
    assert event["status"] == "committed", event
    still_serving_and_steerable(field, "2.0.0")
    metrics = httpx.get(f"{field.device.url}/metrics", timeout=10).text
    assert 'code="5' not in metrics  # no request of all these answered 5xx
    assert (
        hashlib.sha256(field.bundles["2.0.0"].read_bytes()).hexdigest()
        in (field.state / "models" / "state.json").read_text()
    )
