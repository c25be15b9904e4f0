"""``set-config``: every key checked, all or nothing, applied at once, kept in the state directory, and read
again at the next start over the flags; and the agent's ``rebirth``."""

from __future__ import annotations

import dataclasses
import json
import logging
from types import SimpleNamespace

import orjson
import pytest

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.fleet.agent import Agent
from edgekit_runtime.fleet.deploy import HealthPolicy
from edgekit_runtime.fleet.settings import (
    CONFIG,
    KEYS,
    ConfigFile,
    DeviceConfig,
    SetConfig,
    check,
    set_log_level,
    starting_config,
)
from edgekit_runtime.telemetry.mqtt import MqttSettings, Topics
from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings

MODEL = {"name": "digits-mlp", "version": "1.0.0", "sha256": "0" * 64, "backend": "onnxruntime"}


class Intervals:
    """The telemetry seam: keeps each interval it is told."""

    def __init__(self) -> None:
        self.set: list[float] = []

    def set_interval(self, seconds: float) -> None:
        self.set.append(seconds)


class State:
    """The publisher seam: keeps each state change."""

    def __init__(self) -> None:
        self.fields: dict[str, object] = {}
        self.updates = 0

    def update_state(self, **fields: object) -> None:
        self.fields.update(fields)
        self.updates += 1


@pytest.fixture
def device(tmp_path):
    """A SetConfig over seams: (command, deployer, intervals, state, events)."""
    deployer = SimpleNamespace(policy=HealthPolicy())
    intervals, state, events = Intervals(), State(), []
    command = SetConfig(
        DeviceConfig(),
        ConfigFile(tmp_path),
        deployer=deployer,
        telemetry=intervals,
        state=state,
        emit=lambda cid, status, detail: events.append((cid, str(getattr(status, "value", status)), detail)),
    )
    return command, deployer, intervals, state, events


@pytest.fixture(autouse=True)
def _restore_log_levels():
    loggers = [logging.getLogger(name) for name in ("edgekit_runtime", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_the_keys_are_the_configs_fields():
    assert list(KEYS) == [field.name for field in dataclasses.fields(DeviceConfig)]
    assert DeviceConfig().policy() == HealthPolicy()  # the defaults are the deployer's


@pytest.mark.parametrize(
    ("values", "kept"),
    [
        ({"deploy_watch": 0}, {"deploy_watch": 0.0}),
        ({"deploy_watch": 86_400}, {"deploy_watch": 86_400.0}),
        ({"max_error_rate": 0, "max_latency_ratio": 0.5}, {"max_error_rate": 0.0, "max_latency_ratio": 0.5}),
        ({"max_error_rate": 1}, {"max_error_rate": 1.0}),
        ({"min_requests": 0}, {"min_requests": 0}),
        ({"min_requests": 50.0}, {"min_requests": 50}),
        ({"telemetry_interval": 0.05}, {"telemetry_interval": 0.05}),
        ({"log_level": "debug"}, {"log_level": "debug"}),
        ({}, {}),
    ],
)
def test_values_in_range_are_kept(values, kept):
    assert check(values) == kept


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"deploy_watch": -1}, "deploy_watch -1 is not allowed: use seconds from 0 to 86400"),
        ({"deploy_watch": "10"}, 'deploy_watch "10" is not allowed'),
        ({"deploy_watch": True}, "deploy_watch true is not allowed"),
        ({"max_error_rate": 1.5}, "max_error_rate 1.5 is not allowed: use a rate from 0 to 1"),
        ({"max_latency_ratio": 0}, "max_latency_ratio 0 is not allowed: use a number > 0"),
        ({"min_requests": 2.5}, "min_requests 2.5 is not allowed: use a whole number >= 0"),
        ({"min_requests": -1}, "min_requests -1 is not allowed"),
        ({"telemetry_interval": 0}, "telemetry_interval 0 is not allowed: use seconds from 0.05 to 86400"),
        ({"log_level": "verbose"}, 'log_level "verbose" is not allowed: use one of debug, info, warning, error'),
        ({"log_level": None}, "log_level null is not allowed"),
        ({"deploy_wach": 5}, "'deploy_wach': not a setting (settings are deploy_watch, max_error_rate"),
        ([1, 2], "set-config needs 'config', an object of settings"),
    ],
)
def test_values_that_are_not_allowed_are_named_in_one_line(values, words):
    with pytest.raises(ConfigError) as caught:
        check(values)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        check({"colour": "red", "deploy_watch": -2, "log_level": "loud", "max_error_rate": 0.1})
    message = str(caught.value)
    assert "'colour': not a setting" in message
    assert "deploy_watch -2" in message
    assert 'log_level "loud"' in message
    assert "max_error_rate 0.1" not in message  # the good one is not a problem
    assert len(message.split("; ")) == 3


def test_a_change_is_applied_at_once_kept_and_reported(device, tmp_path):
    command, deployer, intervals, state, events = device
    old_policy = deployer.policy
    command.run("c1", {"config": {"deploy_watch": 0, "min_requests": 5, "telemetry_interval": 2, "log_level": "debug"}})
    assert events == [
        (
            "c1",
            "done",
            "deploy_watch 30 -> 0; min_requests 20 -> 5; telemetry_interval 10 -> 2; log_level warning -> debug",
        )
    ]
    assert deployer.policy is not old_policy
    assert deployer.policy == HealthPolicy(window=0, min_requests=5)
    assert intervals.set == [2.0]
    assert logging.getLogger("edgekit_runtime").level == logging.DEBUG
    assert logging.getLogger("uvicorn.error").level == logging.DEBUG
    assert state.fields["config"] == {
        "deploy_watch": 0.0,
        "max_error_rate": 0.05,
        "max_latency_ratio": 2.0,
        "min_requests": 5,
        "telemetry_interval": 2.0,
        "log_level": "debug",
    }
    kept = json.loads((tmp_path / CONFIG).read_text())
    assert kept == {"deploy_watch": 0.0, "log_level": "debug", "min_requests": 5, "telemetry_interval": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG]  # no temporary file left behind


def test_a_later_command_adds_to_what_is_kept(device, tmp_path):
    command, deployer, intervals, _, events = device
    command.run("c1", {"config": {"deploy_watch": 5}})
    command.run("c2", {"config": {"max_latency_ratio": 4}})
    command.run("c3", {"config": {"deploy_watch": 5}})
    assert [detail for *_, detail in events] == [
        "deploy_watch 30 -> 5",
        "max_latency_ratio 2 -> 4",
        "no change: deploy_watch is already 5",
    ]
    assert deployer.policy == HealthPolicy(window=5, max_latency_ratio=4)
    assert intervals.set == []  # the interval was not touched
    assert json.loads((tmp_path / CONFIG).read_text()) == {"deploy_watch": 5.0, "max_latency_ratio": 4.0}


@pytest.mark.parametrize(
    "doc",
    [
        {"config": {"deploy_watch": 1, "colour": "red"}},
        {"config": {"deploy_watch": 1, "max_error_rate": 2}},
        {"config": {}},
        {"config": "deploy_watch=1"},
        {},
    ],
)
def test_a_refused_change_changes_nothing(device, tmp_path, doc):
    command, deployer, intervals, state, events = device
    policy, config, updates = deployer.policy, command.config, state.updates
    command.run("bad", doc)
    assert [(cid, status) for cid, status, _ in events] == [("bad", "refused")]
    assert "\n" not in events[0][2]
    assert deployer.policy is policy
    assert command.config == config
    assert intervals.set == []
    assert state.updates == updates
    assert not (tmp_path / CONFIG).exists()


def test_a_file_that_cannot_be_written_fails_and_changes_nothing(device, tmp_path):
    command, deployer, _, _, events = device
    (tmp_path / CONFIG).mkdir()  # a folder where the file goes: the rename over it fails
    policy = deployer.policy
    command.run("c1", {"config": {"deploy_watch": 1}})
    assert events[0][:2] == ("c1", "failed")
    assert "nothing changed" in events[0][2]
    assert deployer.policy is policy


def test_the_kept_choices_win_over_the_flags_at_the_next_start(device, tmp_path):
    command, *_ = device
    command.run("c1", {"config": {"deploy_watch": 0, "log_level": "info"}})
    flags = DeviceConfig(deploy_watch=12, telemetry_interval=3, log_level="error")
    config, said = starting_config(flags, ConfigFile(tmp_path))
    assert config == DeviceConfig(deploy_watch=0, telemetry_interval=3, log_level="info")
    assert said == ["deploy_watch 12 -> 0", "log_level error -> info"]
    assert starting_config(flags, ConfigFile(tmp_path / "new")) == (flags, [])  # nothing kept: the flags
    (tmp_path / "a-file").write_text("")
    assert ConfigFile(tmp_path / "a-file").load() == {}  # a state dir that cannot be made is refused later, as such


@pytest.mark.parametrize(
    ("text", "words"),
    [("{not json", "cannot be read"), ('{"deploy_watch": -5}', "deploy_watch -5 is not allowed")],
)
def test_a_kept_file_that_is_broken_says_where_it_is(tmp_path, text, words):
    (tmp_path / CONFIG).write_text(text)
    with pytest.raises(ConfigError) as caught:
        ConfigFile(tmp_path).load()
    assert str(tmp_path / CONFIG) in str(caught.value)
    assert words in str(caught.value)
    assert "move it aside" in str(caught.value)


def test_set_log_level_sets_the_runtimes_and_uvicorns_loggers():
    set_log_level("error")
    assert logging.getLogger("edgekit_runtime").level == logging.ERROR
    assert logging.getLogger("edgekit_runtime.fleet").getEffectiveLevel() == logging.ERROR
    assert logging.getLogger("uvicorn.error").level == logging.ERROR


def test_the_interval_reaches_the_recorder_and_the_state_message(tmp_path):
    settings = TelemetrySettings(
        state_dir=tmp_path / "state", fleet="lab", device="pi-7", mqtt=MqttSettings("mqtt://127.0.0.1:1")
    )
    telemetry = Telemetry(settings, MODEL, None)  # not started: nothing connects
    try:
        assert telemetry.publisher is not None
        command = SetConfig(
            DeviceConfig(),
            ConfigFile(settings.state_dir),
            deployer=SimpleNamespace(policy=HealthPolicy()),
            telemetry=telemetry,
            state=telemetry.publisher,
            emit=lambda *_: None,
        )
        assert orjson.loads(telemetry.publisher.state_payload("online"))["config"]["telemetry_interval"] == 10
        command.run("c1", {"config": {"telemetry_interval": 0.5}})
        assert telemetry.recorder.settings.interval == 0.5
        state = orjson.loads(telemetry.publisher.state_payload("online"))
        assert state["telemetry"] == {"interval": 0.5}
        assert state["config"]["telemetry_interval"] == 0.5
    finally:
        telemetry.stop()


class Publisher:
    """The agent's side of the publisher, keeping what it is asked to do in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.on_message = None

    def subscribe(self, topic: str) -> None:
        self.calls.append(("subscribe", topic))

    def update_state(self, **fields: object) -> None:
        self.calls.append(("state", fields))

    def send(self, topic: str, payload: bytes) -> None:
        self.calls.append(("send", {"topic": topic, **orjson.loads(payload)}))


def test_rebirth_publishes_the_state_again_before_saying_done():
    publisher = Publisher()
    model = SimpleNamespace(name="digits-mlp", version="1.0.0", sha256="0" * 64)
    agent = Agent(publisher, Topics("lab", "pi-7"), SimpleNamespace(serving=model, emit=None))
    publisher.calls.clear()
    agent.handle({"id": "r1", "command": "rebirth"})
    assert [kind for kind, _ in publisher.calls] == ["state", "send"]
    event = publisher.calls[1][1]
    assert (event["command"], event["status"], event["id"]) == ("rebirth", "done", "r1")
    assert event["topic"] == "edgekit/lab/pi-7/events"
    agent.handle({"id": "r1", "command": "rebirth"})  # delivered twice: runs once
    assert len(publisher.calls) == 2
