"""``FleetLink.command`` signs: what it publishes on a real broker is an envelope the runtime's gate opens for the
target it was sent to, and for no other."""

from __future__ import annotations

import threading
import time

import orjson
import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edgekit.errors import FleetError
from edgekit.fleet.link import FleetLink
from edgekit.telemetry.collector import CollectorSettings
from edgekit_runtime.errors import CommandError
from edgekit_runtime.fleet.command_journal import CommandJournal
from edgekit_runtime.fleet.signed_command import CommandGate
from edgekit_runtime.signing import TrustedKey, key_id


class Tap:
    """A plain client that keeps every command published in fleet ``lab``: (topic, payload)."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("edgekit/lab/+/cmd", qos=1)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def wait(self, count: int) -> dict[str, bytes]:
        deadline = time.monotonic() + 10
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return {topic.split("/")[2]: payload for topic, payload in self.got}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_command_the_link_publishes_is_one_the_device_opens_for_that_target_alone(mosquitto, tmp_path):
    key = Ed25519PrivateKey.generate()
    trusted = TrustedKey(key_id(key.public_key()), key.public_key(), "owner.pub")
    tap = Tap(mosquitto.port)
    try:
        with FleetLink(CollectorSettings(mosquitto.url, fleet="lab"), sign_key=key) as link:
            link.command("pi-1", {"id": "c-1", "command": "status"})
            link.command("@lab", {"id": "c-2", "command": "rollback"})
        sent = tap.wait(2)
    finally:
        tap.close()
    assert set(sent) == {"pi-1", "@lab"}
    gate = CommandGate([trusted], fleet="lab", journal=CommandJournal(tmp_path))
    with pytest.raises(CommandError, match="signed for lab/pi-1, not lab/pi-2 where it arrived") as moved:
        gate.open(sent["pi-1"], "pi-2")  # the envelope copied onto another device's topic
    assert moved.value.command_id == "c-1"
    opened = gate.open(sent["pi-1"], "pi-1")
    assert {k: opened[k] for k in ("id", "command", "fleet", "target")} == {
        "id": "c-1",
        "command": "status",
        "fleet": "lab",
        "target": "pi-1",
    }
    assert abs(opened["issued_at"] - time.time()) < 60
    assert gate.open(sent["@lab"], "@lab")["command"] == "rollback"
    with pytest.raises(CommandError, match="taken before"):
        gate.open(sent["pi-1"], "pi-1")  # the same envelope again
    other = Ed25519PrivateKey.generate()
    stranger = CommandGate(
        [TrustedKey(key_id(other.public_key()), other.public_key(), "other.pub")],
        fleet="lab",
        journal=CommandJournal(tmp_path / "other"),
    )
    with pytest.raises(CommandError, match="which this device does not trust"):
        stranger.open(sent["@lab"], "@lab")


def test_a_link_without_a_sign_key_refuses_to_send_a_command():
    link = FleetLink(CollectorSettings("mqtt://127.0.0.1:1", fleet="lab"))  # never connected: nothing to send on
    with pytest.raises(FleetError, match="fleet commands are signed: give --sign-key KEY"):
        link.command("pi-1", {"id": "c-1", "command": "status"})


@pytest.fixture
def provisioned_broker(tmp_path):
    """A broker configured by ``edgekit fleet provision`` alone: pi-1, pi-2, operator, collector."""
    from edgekit.fleet.broker_accounts import Device
    from edgekit.fleet.provision import ProvisionRequest, provision
    from tests.brokers import Mosquitto, free_port

    port = free_port()
    request = ProvisionRequest(fleet="lab", devices=(Device("pi-1"), Device("pi-2")), port=port, bind="127.0.0.1")
    made = provision(tmp_path / "provisioned", request)
    broker = Mosquitto(tmp_path / "broker", port, include=made.folder)
    broker.start()
    yield broker, made
    broker.stop()


def account(broker, made, name: str) -> CollectorSettings:
    password = made.password_file(name).read_text().strip()
    return CollectorSettings(broker.url, username=name, password=password, fleet="lab")


def test_a_command_the_brokers_acl_refuses_is_an_error_not_a_silent_success(provisioned_broker):
    broker, made = provisioned_broker
    key = Ed25519PrivateKey.generate()
    refused = r"the broker refused a command to pi-1 \(Not authorized\)"
    with FleetLink(account(broker, made, "pi-2"), sign_key=key) as link, pytest.raises(FleetError, match=refused):
        link.command("pi-1", {"id": "c-1", "command": "status"})
    with FleetLink(account(broker, made, "operator"), sign_key=key) as link:
        link.command("pi-1", {"id": "c-2", "command": "status"})  # the operator may


def test_a_state_that_speaks_for_another_device_is_not_believed(provisioned_broker):
    broker, made = provisioned_broker
    thief = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    thief.username_pw_set("pi-2", made.password_file("pi-2").read_text().strip())
    thief.connect("127.0.0.1", broker.port)
    thief.loop_start()
    try:
        state = {"schema": "edgekit.state/1", "status": "online", "fleet": "lab", "device": "pi-1", "groups": ["x"]}
        thief.publish("edgekit/lab/pi-2/state", orjson.dumps(state), qos=1, retain=True).wait_for_publish(10)
        with FleetLink(account(broker, made, "operator")) as link:
            assert link.collect_states(1.0) == []  # pi-2's topic, pi-1's name: a spoof
    finally:
        thief.loop_stop()
        thief.disconnect()
