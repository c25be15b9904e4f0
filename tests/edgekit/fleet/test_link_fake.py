"""The operator's link against the in-memory broker: PUBACK refusals and timeouts are errors, states and events
arrive, spoofs are not believed, a lost connection comes back."""

from __future__ import annotations

import time

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit.errors import FleetError
from edgekit.fleet.link import FleetLink
from edgekit.telemetry.collector import CollectorSettings
from edgekit_runtime.mqtt.testing import FakeBroker

SETTINGS = CollectorSettings("mqtt://fake", fleet="lab")


@pytest.fixture
def broker():
    return FakeBroker()


def link(broker: FakeBroker, **options) -> FleetLink:
    return FleetLink(SETTINGS, sign_key=Ed25519PrivateKey.generate(), connector=broker.connection, **options)


def state(device: str, **fields) -> bytes:
    return orjson.dumps({"schema": "edgekit.state/1", "status": "online", "fleet": "lab", "device": device, **fields})


def test_a_command_is_signed_published_and_acknowledged(broker):
    with link(broker) as operator:
        operator.command("pi-1", {"id": "c-1", "command": "status"})
    (sent,) = broker.messages("edgekit/lab/+/cmd")
    assert sent.topic == "edgekit/lab/pi-1/cmd"
    assert orjson.loads(sent.payload)["schema"] == "edgekit.signed-command/1"


def test_a_command_the_broker_refuses_is_an_error_not_a_silent_success(broker):
    broker.refuse("edgekit/lab/+/cmd", "Not authorized")
    with link(broker) as operator, pytest.raises(FleetError) as refused:
        operator.command("pi-1", {"id": "c-1", "command": "status"})
    assert str(refused.value) == (
        "the broker refused a command to pi-1 (Not authorized): check --username and that the broker's ACL lets "
        "this account publish there (edgekit fleet provision's operator may)"
    )


def test_a_command_without_a_puback_in_time_is_an_error(broker):
    with link(broker) as operator:
        broker.hold_acks = True
        with pytest.raises(FleetError, match=r"^the broker did not take a command to pi-1 in 0.2 s$"):
            operator.command("pi-1", {"id": "c-1", "command": "status"}, timeout=0.2)


def test_bundle_chunks_are_retained_until_cleared(broker):
    with link(broker) as operator:
        operator.publish([("edgekit/lab/bundles/x/0", b"chunk")], retain=True, what="chunks")
        assert broker.retained["edgekit/lab/bundles/x/0"].payload == b"chunk"
        operator.publish([("edgekit/lab/bundles/x/0", b"")], retain=True, what="the clean-up")
    assert broker.retained == {}


def test_an_unreachable_broker_and_a_refused_login_are_one_line_each(broker):
    broker.up = False
    with pytest.raises(FleetError, match=r"^cannot reach the broker mqtt://fake:1883 \(.*Connection refused\)"):
        link(broker).__enter__()
    broker.up = True
    broker.refuse_login = "Not authorized"
    with pytest.raises(FleetError) as refused:
        link(broker).__enter__()
    assert str(refused.value) == (
        "the broker mqtt://fake:1883 did not let us in (Not authorized): check --broker and the credentials"
    )


def test_states_and_events_arrive_and_a_spoof_is_not_believed(broker):
    broker.publish("edgekit/lab/pi-1/state", state("pi-1", groups=["cams"]), retain=True)
    broker.publish("edgekit/lab/pi-2/state", state("pi-1"), retain=True)  # pi-2's topic, pi-1's name
    with link(broker) as operator:
        assert [s.device for s in operator.collect_states(0.1)] == ["pi-1"]
        broker.publish("edgekit/lab/pi-1/events", orjson.dumps({"device": "pi-1", "id": "c-1", "status": "done"}))
        broker.publish("edgekit/lab/pi-1/events", b"not json")
        message = operator.next_message(5.0)
        assert message is not None
        assert (message.kind, message.device) == ("state", "pi-1")
        message = operator.next_message(5.0)
        assert message is not None
        assert (message.kind, message.device, message.doc["status"]) == ("events", "pi-1", "done")
        assert operator.next_message(0.05) is None


def test_a_lost_connection_comes_back_subscribed(broker):
    with link(broker) as operator:
        broker.drop()
        deadline = time.monotonic() + 10
        while operator.connection.number < 2:  # the first wait is at most 1 s
            assert time.monotonic() < deadline, "no reconnect"
            time.sleep(0.01)
        operator.command("pi-1", {"id": "c-2", "command": "status"})
        broker.publish("edgekit/lab/pi-3/state", state("pi-3"), retain=True)
        message = operator.next_message(5.0)
        assert message is not None
        assert message.device == "pi-3"
