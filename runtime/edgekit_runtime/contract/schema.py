"""The docs' JSON Schemas of the messages, generated from their Structs.

``docs/telemetry.schema.json`` (:func:`schema_text`: what a device publishes) and ``docs/commands.schema.json``
(:func:`commands_schema_text`: what an operator sends a device) are written by ``python tools/gen_schema.py``;
a test fails when a committed file differs. msgspec writes each Struct's schema (its docstring, its fields'
types, bounds and descriptions); two touches follow, both mechanical: a one-value ``enum`` (a Struct's tag) is
written as the ``const`` it is, and a Struct's ``JSON_SCHEMA_RULES`` (what its fields' types cannot say: a rule
between fields, which its ``__post_init__`` checks on decoding, or fields a later step adds) are added to its
definition, a ``required`` list to the one msgspec wrote.
"""

import json
from typing import Any

import msgspec

from edgekit_runtime.contract.commands import Command, SignedCommand
from edgekit_runtime.contract.events import Event
from edgekit_runtime.contract.settings import SettingsChange
from edgekit_runtime.contract.state import State
from edgekit_runtime.contract.telemetry import Batch, Window

#: the messages a device publishes, one of which each payload is
MESSAGES = (Window, Batch, State, Event)
SCHEMA_ID = "https://edgekit.dev/schemas/telemetry.schema.json"
COMMANDS_SCHEMA_ID = "https://edgekit.dev/schemas/commands.schema.json"
_REF = "#/$defs/{name}"


def telemetry_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every message a device publishes."""
    refs, components = msgspec.json.schema_components(MESSAGES, ref_template=_REF)
    return _document(
        SCHEMA_ID,
        "edgekit telemetry messages",
        "What a device publishes under edgekit/{fleet}/{device}/: a window or a batch of windows on .../telemetry, "
        "its state on .../state, a step of a command on .../events (docs/telemetry.md). The schema field says "
        "which kind.",
        {"oneOf": list(refs)},
        components,
    )


def commands_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a command as it travels: a signed envelope whose body is a command."""
    (envelope, command, _), components = msgspec.json.schema_components(
        (SignedCommand, Command, SettingsChange), ref_template=_REF
    )
    return _document(
        COMMANDS_SCHEMA_ID,
        "edgekit fleet commands",
        "What an operator sends on edgekit/{fleet}/{target}/cmd (target: a device id, @all or @GROUP): a signed "
        "envelope whose body is one command as JSON text, the command field saying which (docs/fleet.md).",
        envelope,
        {**components, "Command": command},
    )


def schema_text() -> str:
    """:func:`telemetry_schema` as the file holds it."""
    return _text(telemetry_schema())


def commands_schema_text() -> str:
    """:func:`commands_schema` as the file holds it."""
    return _text(commands_schema())


def _document(
    schema_id: str, title: str, description: str, root: dict[str, Any], components: dict[str, Any]
) -> dict[str, Any]:
    for cls in _struct_classes():
        rules = getattr(cls, "JSON_SCHEMA_RULES", None)
        if rules and cls.__name__ in components:
            _add_rules(components[cls.__name__], rules)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        "description": f"{description} Generated from edgekit_runtime.contract: python tools/gen_schema.py",
        **root,
        "$defs": _consts(components),
    }


def _add_rules(definition: dict[str, Any], rules: dict[str, Any]) -> None:
    for key, value in rules.items():
        if key == "required":
            known = definition.setdefault("required", [])
            known.extend(name for name in value if name not in known)
        else:
            definition[key] = value


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _struct_classes() -> list[type[msgspec.Struct]]:
    """Every Struct defined in this package."""
    found, todo = [], [msgspec.Struct]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith(f"{__package__}."):
                found.append(sub)
    return found


def _consts(node: Any) -> Any:  # noqa: ANN401  (any JSON value)
    """``node`` with every one-value ``enum`` written as ``const``."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and len(enum) == 1:
            node = {
                ("const" if key == "enum" else key): (enum[0] if key == "enum" else value)
                for key, value in node.items()
            }
        return {key: _consts(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_consts(value) for value in node]
    return node
