"""What the device really sends decodes as the contract's Structs: windows, batches, states, events, settings."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import msgspec
import pytest

from edgekit_runtime import __version__
from edgekit_runtime.contract.events import Event
from edgekit_runtime.contract.state import DeviceSettings, State
from edgekit_runtime.contract.telemetry import ERROR_KINDS, Window, WindowBody
from edgekit_runtime.fleet.settings import KEYS, DeviceConfig
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.recorder import Identity, Recorder
from edgekit_runtime.telemetry.session import window_bytes

MODEL = {"name": "digits-mlp", "version": "1.0.0", "sha256": "0" * 64, "backend": "onnxruntime"}
STATE = {
    "schema": "edgekit.state/1",
    "fleet": "lab",
    "device": "pi-7",
    "status": "online",
    "since": 1795000000.0,
    "model": MODEL,
    "runtime": {"version": "0.1.0"},
    "telemetry": {"interval": 10.0},
}


def test_a_recorded_window_is_a_window_body_and_sent_a_window(tmp_path):
    with Outbox(tmp_path / "outbox.db") as outbox:
        recorder = Recorder(outbox, Identity("lab", "pi-7", MODEL, __version__))
        recorder.record(0.002)
        recorder.record(0.5, error="timeout")
        seq = recorder.close_window()
        (entry,) = outbox.pending()
        body = msgspec.json.decode(entry.payload, type=WindowBody)
        sent = msgspec.json.decode(window_bytes(entry, outbox.dropped, outbox.count), type=Window)
    assert (body.fleet, body.device, body.requests, body.errors) == ("lab", "pi-7", 2, {"timeout": 1})
    assert body.model.name == "digits-mlp"
    assert (sent.seq, sent.outbox.pending, sent.requests) == (seq, 1, 2)


def test_a_state_says_why_it_is_offline_and_an_online_one_does_not():
    assert msgspec.convert(STATE, State).status == "online"
    assert msgspec.convert({**STATE, "status": "offline", "reason": "lost"}, State).reason == "lost"
    for broken in ({**STATE, "status": "offline"}, {**STATE, "reason": "stopped"}):
        with pytest.raises(msgspec.ValidationError, match="reason"):
            msgspec.convert(broken, State)
    with pytest.raises(msgspec.ValidationError, match="since"):
        msgspec.convert({k: v for k, v in STATE.items() if k != "since"}, State)


def test_the_agents_events_are_events():
    from edgekit_runtime.fleet.agent import Agent

    class Publisher:
        on_message = None

        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def subscribe(self, topic: str) -> None:
            pass

        def send(self, _topic: str, payload: bytes) -> None:
            self.sent.append(payload)

        def update_state(self, **_fields: object) -> None:
            pass

    class Deployer:
        serving = type("Serving", (), {"name": "digits", "version": "1.0.0", "sha256": "0" * 64})()
        emit = fetch = None

    publisher = Publisher()
    agent = Agent(publisher, SimpleNamespace(fleet="lab", device="pi-1"), Deployer())
    agent.emit("c1", "refused", "x" * 5000, command="unknown")
    event = msgspec.json.decode(publisher.sent[-1], type=Event)
    assert (event.id, event.command, event.status, len(event.detail)) == ("c1", "unknown", "refused", 2000)


def test_the_states_config_is_the_device_config_in_the_settings_ranges():
    assert [f.name for f in dataclasses.fields(DeviceConfig)] == list(DeviceSettings.__struct_fields__)
    assert msgspec.convert(DeviceConfig().to_json(), DeviceSettings) == DeviceSettings(**DeviceConfig().to_json())
    for field in msgspec.inspect.type_info(DeviceSettings).fields:
        key, kind = KEYS[field.name], field.type
        if isinstance(kind, msgspec.inspect.LiteralType):
            assert set(key.choices) <= set(kind.values), field.name
            continue
        low = kind.gt if kind.gt is not None else kind.ge
        assert (key.low, key.above, key.high) == (low, kind.gt is not None, kind.le), field.name
        assert key.whole == isinstance(kind, msgspec.inspect.IntType), field.name


def test_the_server_counts_the_error_kinds_the_window_names():
    from edgekit_runtime.server.telemetry_hook import error_kind

    kinds = {error_kind(status) for status in (400, 401, 404, 408, 413, 422, 499, 500, 503)}
    assert kinds == set(ERROR_KINDS)
