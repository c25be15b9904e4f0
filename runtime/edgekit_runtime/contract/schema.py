"""The docs' JSON Schema of what a device publishes, generated from the message Structs.

``docs/telemetry.schema.json`` is :func:`schema_text`, written by ``python tools/gen_schema.py``; a test fails
when the committed file differs. msgspec writes each Struct's schema (its docstring, its fields' types, bounds
and descriptions); two touches follow, both mechanical: a one-value ``enum`` (a Struct's tag) is written as the
``const`` it is, and a Struct's ``JSON_SCHEMA_RULES`` (a rule between its fields, which its ``__post_init__``
checks on decoding) are added to its definition.
"""

import json
from typing import Any

import msgspec

from edgekit_runtime.contract.events import Event
from edgekit_runtime.contract.state import State
from edgekit_runtime.contract.telemetry import Batch, Window

#: the messages a device publishes, one of which each payload is
MESSAGES = (Window, Batch, State, Event)
SCHEMA_ID = "https://edgekit.dev/schemas/telemetry.schema.json"


def telemetry_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every message a device publishes."""
    refs, components = msgspec.json.schema_components(MESSAGES, ref_template="#/$defs/{name}")
    for cls in _struct_classes():
        rules = getattr(cls, "JSON_SCHEMA_RULES", None)
        if rules and cls.__name__ in components:
            components[cls.__name__].update(rules)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "edgekit telemetry messages",
        "description": (
            "What a device publishes under edgekit/{fleet}/{device}/: a window or a batch of windows on "
            ".../telemetry, its state on .../state, a step of a command on .../events (docs/telemetry.md). The "
            "schema field says which kind. Generated from edgekit_runtime.contract: python tools/gen_schema.py"
        ),
        "oneOf": list(refs),
        "$defs": _consts(components),
    }


def schema_text() -> str:
    """:func:`telemetry_schema` as the file holds it."""
    return json.dumps(telemetry_schema(), indent=2, ensure_ascii=False) + "\n"


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
