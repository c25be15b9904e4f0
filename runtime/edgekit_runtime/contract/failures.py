"""Where a message failed its Struct: the path msgspec names in a ``ValidationError``, as steps.

msgspec says where decoding stopped in its error's text, ``Expected `int` >= 1 - at `$.seq``` or
``Object missing required field `size` - at `$.model```; :func:`failed_at` reads that into the steps from the
message's root to the value (keys as ``str``, list indexes as ``int``, ``...`` for "some value of an object"), so
each side can refuse in its own words. ``tests/runtime/contract/test_failures.py`` pins msgspec's phrasing.
"""

from __future__ import annotations

import re
from types import EllipsisType

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_STEP = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>\.\.\.|\d+)\]")

#: a step into a message: an object's key, a list's index, or ``...`` (some value of an object)
Step = str | int | EllipsisType


def failed_at(error: Exception | str) -> list[Step]:
    """The steps from the message's root to the value ``error`` refuses (a missing field's name last)."""
    text = str(error)
    at = _AT.search(text)
    steps: list[Step] = []
    for step in _STEP.finditer(at["path"] if at else ""):
        if step["key"] is not None:
            steps.append(step["key"])
        else:
            steps.append(... if step["index"] == "..." else int(step["index"]))
    missing = _MISSING.match(text)
    if missing:
        steps.append(missing["field"])
    return steps
