"""Fleet and device names are single topic levels, and a device's topics live under them."""

from __future__ import annotations

import pytest

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.telemetry.mqtt import Topics, check_name


def test_topics_live_under_the_fleet_and_device():
    topics = Topics("lab", "pi-7")
    assert topics.telemetry == "edgekit/lab/pi-7/telemetry"
    assert topics.state == "edgekit/lab/pi-7/state"


@pytest.mark.parametrize("name", ["a", "pi-7", "Lab_2.b", "x" * 64])
def test_names_that_can_be_topic_levels(name):
    assert check_name("fleet", name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "a/b", "+", "#", "pi 7", "pi\u00e97", "lab\n", "a$b"])
def test_names_that_cannot_be_topic_levels_are_refused(name):
    with pytest.raises(ConfigError, match="cannot be an MQTT topic level: use 1 to 64 characters"):
        check_name("device", name)
    with pytest.raises(ConfigError, match=r"^--fleet"):
        Topics(name, "pi-7")
    with pytest.raises(ConfigError, match=r"^--device"):
        Topics("lab", name)
