"""docs/commands.schema.json is generated from the command Structs, and says what a device takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft202012Validator

from edgekit_runtime.contract.commands import COMMANDS, Deploy, Rollback, SetConfig, Status
from edgekit_runtime.contract.schema import commands_schema, commands_schema_text
from edgekit_runtime.fleet.signed_command import seal

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "commands.schema.json"
SHA = "a" * 64


@pytest.fixture(scope="module")
def schema() -> dict:
    made = commands_schema()
    Draft202012Validator.check_schema(made)
    return made


def body_validator(schema: dict) -> Draft202012Validator:
    """A validator of a command body: the envelope's contentSchema."""
    return Draft202012Validator({**schema, "$ref": "#/$defs/Command"})


def sealed_body(body: dict) -> dict:
    payload = seal(body, Ed25519PrivateKey.generate(), fleet="lab", target="pi-1", now=1795000000.0)
    envelope = json.loads(payload)
    return json.loads(envelope["body"])


def test_the_committed_schema_is_what_the_structs_generate():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == commands_schema_text(), (
        "docs/commands.schema.json differs from the Structs in edgekit_runtime.contract: run "
        ".venv/bin/python tools/gen_schema.py"
    )


def test_a_sealed_envelope_and_every_command_it_carries_validate(schema):
    envelope = Draft202012Validator(schema)
    bodies = body_validator(schema)
    built = [
        Deploy(source=f"mqtt:{SHA}", sha256=SHA, size=10, allow_downgrade=True),
        Rollback(),
        SetConfig(config={"deploy_watch": 10, "log_level": "info"}),
        Status(),
    ]
    for n, command in enumerate(built):
        doc = {**msgspec.to_builtins(command), "id": f"c{n}"}
        payload = seal(doc, Ed25519PrivateKey.generate(), fleet="lab", target="@all")
        envelope.validate(json.loads(payload))
        bodies.validate(json.loads(json.loads(payload)["body"]))
    kinds = {
        d["properties"]["command"]["const"] for d in schema["$defs"].values() if "command" in d.get("properties", {})
    }
    assert kinds == set(COMMANDS)


@pytest.mark.parametrize(
    "body",
    [
        {"command": "deploy", "source": "/etc/shadow", "sha256": SHA, "size": 10},
        {"command": "deploy", "source": f"mqtt:{SHA}", "sha256": SHA},
        {"command": "deploy", "source": f"mqtt:{SHA}", "sha256": SHA, "size": 0},
        {"command": "set-config", "config": {"colour": "red"}},
        {"command": "set-config", "config": {"max_error_rate": 2}},
        {"command": "set-config", "config": {}},
        {"command": "reboot"},
    ],
)
def test_what_a_device_refuses_the_schema_refuses(schema, body):
    assert not body_validator(schema).is_valid(sealed_body({**body, "id": "c1"}))


def test_a_body_without_its_id_or_binding_is_not_a_signed_body(schema):
    doc = sealed_body({"id": "c1", "command": "status"})
    validator = body_validator(schema)
    assert validator.is_valid(doc)
    for name in ("id", "fleet", "target", "issued_at", "nonce"):
        assert not validator.is_valid({k: v for k, v in doc.items() if k != name}), name


def test_an_operators_body_leaves_out_what_it_does_not_set():
    assert msgspec.to_builtins(Deploy(source=f"mqtt:{SHA}", sha256=SHA, size=10)) == {
        "command": "deploy",
        "source": f"mqtt:{SHA}",
        "sha256": SHA,
        "size": 10,
    }
    assert msgspec.to_builtins(Status(id="s1")) == {"command": "status", "id": "s1"}


def test_the_tool_writes_and_checks_the_commands_file_alone_when_named(tmp_path):
    out = tmp_path / "commands.schema.json"
    tool = [sys.executable, str(ROOT / "tools" / "gen_schema.py")]
    assert subprocess.run([*tool, "--commands-out", str(out)], check=False).returncode == 0
    assert out.read_text(encoding="utf-8") == commands_schema_text()
    assert not (tmp_path / "telemetry.schema.json").exists()
    out.write_text("{}", encoding="utf-8")
    checked = subprocess.run(
        [*tool, "--check", "--commands-out", str(out)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 1
    assert "commands.schema.json differs" in checked.stderr
