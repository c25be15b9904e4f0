"""Telling a spoof from a malformed message: what a device's payload claims that its topic does not.

With one broker account per device (``edgekit fleet provision``) the topic says who sent a message, so a payload
that names another fleet or device is a device speaking for another: the collector counts it as ``spoofed``.
"""

from __future__ import annotations

import json

from edgekit.errors import TelemetryError
from edgekit.telemetry.messages import parse_topic


def foreign_claim(topic: str, payload: bytes) -> str | None:
    """What a device's message says that its topic does not: another fleet or device (``None``: nothing).

    Asked of rejected messages only, to tell a spoof from a malformed message; the parser has refused either.
    """
    try:
        fleet, device, _ = parse_topic(topic)
        doc = json.loads(payload)
    except (TelemetryError, ValueError, RecursionError):  # a JSONDecodeError and a UnicodeDecodeError are both
        return None
    if not isinstance(doc, dict):
        return None
    windows = doc.get("windows")
    claims = [doc, *(w for w in windows if isinstance(w, dict))] if isinstance(windows, list) else [doc]
    for claim in claims:
        for key, expected in (("fleet", fleet), ("device", device)):
            if key in claim and claim[key] != expected:
                said = repr(claim[key])
                said = said if len(said) <= 40 else said[:37] + "..."  # noqa: PLR2004
                return (
                    f"{topic}: {key} {said} in the payload does not match the topic's: a device may only speak for"
                    " itself (counted as spoofed)"
                )
    return None
