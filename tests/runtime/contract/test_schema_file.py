"""docs/telemetry.schema.json is generated from the message Structs, and says what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

from edgekit_runtime.contract.schema import MESSAGES, schema_text, telemetry_schema

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "telemetry.schema.json"
TOOL = ROOT / "tools" / "gen_schema.py"
REGENERATE = ".venv/bin/python tools/gen_schema.py"


def test_the_committed_schema_is_what_the_structs_generate():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        f"docs/telemetry.schema.json differs from the Structs in edgekit_runtime.contract: run {REGENERATE}"
    )


def test_the_generated_schema_is_a_valid_schema_of_every_message():
    schema = telemetry_schema()
    Draft202012Validator.check_schema(schema)
    kinds = {schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["schema"]["const"] for ref in schema["oneOf"]}
    assert kinds == {message.__struct_config__.tag for message in MESSAGES}


def test_a_rule_between_fields_is_in_the_schema_too():
    state = telemetry_schema()["$defs"]["State"]
    assert state["if"] == {"properties": {"status": {"const": "offline"}}}
    assert state["then"] == {"required": ["reason"]}


def test_the_tool_writes_the_file_and_check_finds_a_difference(tmp_path):
    out = tmp_path / "telemetry.schema.json"
    wrote = subprocess.run([sys.executable, str(TOOL), "--out", str(out)], capture_output=True, text=True, check=False)
    assert wrote.returncode == 0, wrote.stderr
    assert out.read_text(encoding="utf-8") == schema_text()
    assert subprocess.run([sys.executable, str(TOOL), "--check", "--out", str(out)], check=False).returncode == 0
    out.write_text(json.dumps(json.loads(out.read_text(encoding="utf-8"))), encoding="utf-8")  # same, not as written
    checked = subprocess.run(
        [sys.executable, str(TOOL), "--check", "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 1
    assert "tools/gen_schema.py" in checked.stderr
