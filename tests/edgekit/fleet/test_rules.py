"""The plain-value parts of a rollout: the canary share, the abort rule, and who is targeted."""

from __future__ import annotations

import pytest

from edgekit.errors import ConfigError, FleetError
from edgekit.fleet.rules import (
    DeviceState,
    parse_abort_if,
    parse_canary,
    parse_devices,
    parse_settings,
    resolve_targets,
    split_canary,
)


@pytest.mark.parametrize(("text", "fraction"), [("10%", 0.1), ("100%", 1.0), ("0.5", 0.5), (" 34% ", 0.34)])
def test_canary_shares(text, fraction):
    assert parse_canary(text) == pytest.approx(fraction)


@pytest.mark.parametrize(("text", "words"), [("150%", "out of range"), ("0%", "out of range"), ("ten", "not a share")])
def test_bad_canary_shares_say_what_to_write(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_canary(text)


@pytest.mark.parametrize(
    ("count", "fraction", "size"),
    [(3, 0.34, 2), (3, 0.33, 1), (10, 0.1, 1), (10, 0.11, 2), (1, 0.01, 1), (50, 0.1, 5), (3, 1.0, 3)],
)
def test_canary_is_ceil_of_the_share_and_at_least_one(count, fraction, size):
    devices = [f"pi-{i:02d}" for i in range(count)]
    canary, rest = split_canary(reversed(devices), fraction)
    assert canary == devices[:size]  # the first sorted ids, whatever order they came in
    assert rest == devices[size:]


def test_no_devices_no_canary():
    assert split_canary([], 0.5) == ([], [])


def test_abort_rule_joins_conditions_with_or():
    rule = parse_abort_if("error_rate>0.05 or p99_ms >= 40")
    assert str(rule) == "error_rate>0.05 or p99_ms>=40"
    assert rule.reason({"error_rate": 0.01, "p99_ms": 12.0}) is None
    assert rule.reason({"error_rate": 0.06, "p99_ms": 12.0}) == "error_rate>0.05 (error_rate was 0.06)"
    assert rule.reason({"error_rate": None, "p99_ms": 40.0}).startswith("p99_ms>=40")
    assert rule.reason({"error_rate": None, "p99_ms": None}) is None  # no traffic: nothing to judge


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("error_rate", "not METRIC OP NUMBER"),
        ("latency>5", "unknown metric 'latency'"),
        ("error_rate>0.05 and p99_ms>4", "not METRIC OP NUMBER"),
        ("__import__('os').system('x')>1", "not METRIC OP NUMBER"),
        ("error_rate>0.05 or", "not METRIC OP NUMBER"),
    ],
)
def test_bad_abort_rules_are_refused_without_eval(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_abort_if(text)


def test_device_ids_are_checked():
    assert parse_devices("pi-2, pi-1,pi-2") == ["pi-1", "pi-2"]
    with pytest.raises(ConfigError, match="not a device id"):
        parse_devices("pi-1,a/b")
    with pytest.raises(ConfigError, match="names no device"):
        parse_devices(" , ")


STATES = [
    DeviceState("pi-3", "online"),
    DeviceState("pi-1", "online"),
    DeviceState("pi-2", "offline"),
    DeviceState("cam-1", "online"),
]


def test_targets_are_the_online_devices_of_the_retained_states():
    assert resolve_targets(STATES) == ["cam-1", "pi-1", "pi-3"]


def test_explicit_devices_are_taken_as_given():
    assert resolve_targets(STATES, devices=["pi-2", "zz"]) == ["pi-2", "zz"]


def test_a_group_is_read_from_the_states_when_they_say():
    states = [DeviceState("pi-1", "online", groups=("lab",)), DeviceState("pi-2", "online", groups=("shop",))]
    assert resolve_targets(states, group="lab") == ["pi-1"]


def test_a_group_is_the_devices_that_answered_when_states_do_not_say():
    assert resolve_targets(STATES, group="lab", members={"pi-1", "pi-2"}) == ["pi-1"]  # pi-2 is offline


def test_no_target_is_an_error_that_says_what_to_check():
    with pytest.raises(FleetError, match="check --fleet"):
        resolve_targets([DeviceState("pi-2", "offline")])
    with pytest.raises(FleetError, match="in group 'lab'"):
        resolve_targets(STATES, group="lab", members=set())


def test_a_state_message_is_read():
    doc = {"device": "pi-1", "status": "online", "model": {"name": "digits", "version": "2.0.0"}, "groups": ["lab"]}
    assert DeviceState.from_message(doc) == DeviceState("pi-1", "online", "digits", "2.0.0", ("lab",))
    assert DeviceState.from_message({"status": "online"}) is None


def test_settings_are_json_scalars_or_bare_words():
    pairs = ["deploy_watch=10", "max_error_rate=0.1", "log_level=info", 'name="a b"', "flag=true", "gone=null"]
    assert parse_settings(pairs) == {
        "deploy_watch": 10,
        "max_error_rate": 0.1,
        "log_level": "info",
        "name": "a b",
        "flag": True,
        "gone": None,
    }
    assert isinstance(parse_settings(["min_requests=5"])["min_requests"], int)


@pytest.mark.parametrize(
    ("pairs", "words"),
    [
        ([], "at least one KEY=VALUE"),
        (["deploy_watch"], "'deploy_watch' is not KEY=VALUE"),
        (["deploy_watch="], "is not KEY=VALUE"),
        (["=5"], "is not KEY=VALUE"),
        (["Deploy Watch=5"], "is not KEY=VALUE"),
        (["deploy_watch=1", "deploy_watch=2"], "deploy_watch is given twice"),
        (['deploy_watch={"a": 1}'], "not a JSON object or list"),
        (["deploy_watch=[1]"], "not a JSON object or list"),
    ],
)
def test_bad_settings_are_one_line_saying_what_to_write(pairs, words):
    with pytest.raises(ConfigError) as caught:
        parse_settings(pairs)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)
