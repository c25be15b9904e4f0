"""A device's MQTT names and topics: ``edgekit/{fleet}/{device}/...``.

Fleet and device names are single topic levels; :func:`check_name` refuses any other, naming the flag. Where
the broker is and how to log in is :class:`~edgekit_runtime.mqtt.settings.MqttSettings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgekit_runtime.errors import ConfigError

#: a fleet or device name: one MQTT topic level, safe in file names and SQL too
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_name(kind: str, value: str) -> str:
    """``value`` if it can be a topic level, else a :class:`ConfigError` naming the flag."""
    if not NAME.fullmatch(value):  # match() would let a trailing newline through ($)
        raise ConfigError(
            f"--{kind} '{value}' cannot be an MQTT topic level: use 1 to 64 characters from A-Z a-z 0-9 . _ -"
        )
    return value


@dataclass(frozen=True)
class Topics:
    """The device's topics under ``edgekit/{fleet}/{device}/``."""

    fleet: str
    device: str

    def __post_init__(self) -> None:
        """Check both names."""
        check_name("fleet", self.fleet)
        check_name("device", self.device)

    @property
    def telemetry(self) -> str:
        """Telemetry windows (QoS 1)."""
        return f"edgekit/{self.fleet}/{self.device}/telemetry"

    @property
    def state(self) -> str:
        """Online or offline (retained; the Last Will)."""
        return f"edgekit/{self.fleet}/{self.device}/state"
