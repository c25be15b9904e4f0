"""The retained state is built from the contract's ``State``: what a channel says, and what it refuses to say."""

from __future__ import annotations

import msgspec
import pytest

from edgekit_runtime.contract.state import State
from edgekit_runtime.telemetry.channel import Channel
from edgekit_runtime.telemetry.mqtt import Topics

MODEL = {"name": "digits-mlp", "version": "1.0.0", "sha256": "0" * 64, "backend": "onnxruntime"}


def test_a_serving_devices_state_decodes_as_a_state():
    channel = Channel(Topics("lab", "pi-7"), {"model": MODEL, "runtime": {"version": "0.1.0"}})
    channel.update_state(telemetry={"interval": 10.0}, groups=["shop"], commands="signed")
    online = msgspec.json.decode(channel.state_payload("online"), type=State)
    assert (online.fleet, online.device, online.status, online.groups) == ("lab", "pi-7", "online", ["shop"])
    assert online.model.name == "digits-mlp"
    offline = msgspec.json.decode(channel.state_payload("offline", reason="lost"), type=State)
    assert (offline.status, offline.reason) == ("offline", "lost")
    assert msgspec.json.decode(channel.will().payload, type=State).reason == "lost"


def test_a_bare_channel_says_who_and_how_only():
    doc = msgspec.json.decode(Channel(Topics("lab", "pi-7")).state_payload("online"))
    assert set(doc) == {"schema", "fleet", "device", "status", "since"}


def test_a_field_the_state_has_not_is_refused_and_so_is_an_offline_state_without_reason():
    channel = Channel(Topics("lab", "pi-7"))
    with pytest.raises(TypeError):
        channel.update_state(colour="red")
    with pytest.raises(ValueError, match="needs a reason"):
        channel.state_payload("offline")
