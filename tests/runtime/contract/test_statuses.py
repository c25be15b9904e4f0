"""A command's statuses and names are defined once, in the contract, and every side uses that definition."""

from __future__ import annotations

import typing

import msgspec
import pytest

from edgekit.fleet import rules
from edgekit.telemetry import messages, queries
from edgekit_runtime.contract import commands, statuses
from edgekit_runtime.contract.commands import COMMANDS, Command, Deploy, SignedCommand
from edgekit_runtime.contract.events import Event
from edgekit_runtime.contract.statuses import DONE, EVENT_COMMANDS, EVENT_STATUSES, FINAL_STATUSES, UNKNOWN, Phase
from edgekit_runtime.fleet import agent, deploy, settings, signed_command


def test_the_statuses_are_the_deployers_phases_then_done():
    assert (*(phase.value for phase in Phase), DONE) == EVENT_STATUSES
    assert set(FINAL_STATUSES) <= set(EVENT_STATUSES)
    assert set(typing.get_args(statuses.EventStatus)) == set(EVENT_STATUSES)


def test_host_and_device_use_the_one_definition():
    assert deploy.Phase is Phase
    assert agent.Phase is Phase
    assert settings.Phase is Phase
    assert rules.FINAL is FINAL_STATUSES
    assert messages.EVENT_STATUSES is EVENT_STATUSES
    assert queries.EVENT_STATUSES is EVENT_STATUSES
    assert messages.EVENT_COMMANDS is EVENT_COMMANDS


def test_the_command_names_are_the_command_types_tags():
    assert COMMANDS == ("deploy", "rollback", "set-config", "status", "rebirth", "resend")
    assert (*COMMANDS, UNKNOWN) == EVENT_COMMANDS
    assert {t.__struct_config__.tag for t in typing.get_args(Command)} == set(COMMANDS)


def test_a_sealed_command_is_a_signed_command_with_a_body_of_its_type():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = {"id": "c1", "command": "deploy", "source": "mqtt:" + "a" * 64, "sha256": "a" * 64, "size": 10}
    payload = signed_command.seal(body, Ed25519PrivateKey.generate(), fleet="lab", target="pi-1", now=1795000000.0)
    envelope = msgspec.json.decode(payload, type=SignedCommand)
    assert envelope.key_id
    command = msgspec.json.decode(envelope.body, type=Command)
    assert isinstance(command, Deploy)
    assert (command.id, command.fleet, command.target, command.size) == ("c1", "lab", "pi-1", 10)
    assert not command.allow_downgrade
    assert signed_command.COMMAND_ID.pattern == commands.COMMAND_ID_PATTERN


def test_an_event_names_a_known_command_and_status():
    doc = {
        "schema": "edgekit.event/1",
        "fleet": "lab",
        "device": "pi-1",
        "id": "c1",
        "command": "deploy",
        "status": "installing",
        "detail": "",
        "model": None,
        "time": 1.0,
    }
    with pytest.raises(msgspec.ValidationError, match="status"):
        msgspec.convert(doc, Event)
    assert msgspec.convert({**doc, "status": "done"}, Event).status == "done"
