"""``set-config``: every key checked, all or nothing, applied at once, kept in the state directory, and read
again at the next start over the flags; and the agent's ``rebirth``."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edgekit_runtime.errors import ConfigError
from edgekit_runtime.fleet.agent import Agent
from edgekit_runtime.fleet.deploy_health import HealthPolicy
from edgekit_runtime.fleet.settings import (
    CONFIG,
    KEYS,
    LOG_LEVELS,
    MAX_KEYS,
    MAX_TEXT,
    ConfigFile,
    DeviceConfig,
    SetConfig,
    StartingConfig,
    check,
    set_log_level,
    starting_config,
)
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.telemetry.mqtt import Topics
from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings
from tests.runtime.server.process import ServeProcess

MODEL = {"name": "digits-mlp", "version": "1.0.0", "sha256": "0" * 64, "backend": "onnxruntime"}
MLP = Path(__file__).resolve().parents[3] / "examples" / "digits" / "mlp.onnx"
IGNORED = (
    "it is ignored and the command line's settings apply: fix it, or delete it (the next set-config writes a new one)"
)


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


def test_min_requests_1e30_kept_by_an_old_build_is_ignored_at_start_and_refused_now(tmp_path, device):
    # an older build accepted it and saved it; orjson cannot encode the int it becomes, so the MQTT thread died
    (tmp_path / CONFIG).write_text('{"deploy_watch": 5.0, "min_requests": 1e30}')
    flags = DeviceConfig(deploy_watch=12)
    start = starting_config(flags, ConfigFile(tmp_path))
    assert start.config == flags  # not fatal: the device starts with the command line's settings
    assert start.changed == ()
    assert "\n" not in start.ignored
    assert start.ignored == (
        f"{tmp_path / CONFIG}: min_requests 1e+30 is not allowed: use a whole number from 0 to 1000000; it is "
        "ignored and the command line's settings apply: fix it, or delete it (the next set-config writes a new one)"
    )
    orjson.dumps(start.config.to_json())  # the state message can be made
    command, deployer, _, _, events = device  # sent now: refused in one line, nothing kept
    (tmp_path / CONFIG).unlink()
    policy = deployer.policy
    command.run("attack", {"config": {"min_requests": 1e30}})
    assert events == [("attack", "refused", "min_requests 1e+30 is not allowed: use a whole number from 0 to 1000000")]
    assert deployer.policy is policy
    assert not (tmp_path / CONFIG).exists()


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
        ({"max_latency_ratio": 0}, "max_latency_ratio 0 is not allowed: use a number > 0, up to 1000"),
        ({"min_requests": 2.5}, "min_requests 2.5 is not allowed: use a whole number from 0 to 1000000"),
        ({"min_requests": -1}, "min_requests -1 is not allowed"),
        ({"telemetry_interval": 0}, "telemetry_interval 0 is not allowed: use seconds from 0.05 to 86400"),
        ({"log_level": "verbose"}, 'log_level "verbose" is not allowed: use one of debug, info, warning, error'),
        ({"log_level": None}, "log_level null is not allowed"),
        ({"deploy_wach": 5}, "'deploy_wach': not a setting (settings are deploy_watch, max_error_rate"),
        ([1, 2], "set-config needs 'config', an object of settings"),
        ({"min_requests": 10**400}, "min_requests a number too large is not allowed"),
        ({"min_requests": 2**70}, "min_requests 1.18059e+21 is not allowed"),
        ({"deploy_watch": float("nan")}, "deploy_watch NaN is not allowed"),
        ({"max_latency_ratio": float("inf")}, "max_latency_ratio Infinity is not allowed"),
        ({"log_level": "debug" * 1000}, f'log_level "{("debug" * 8)[:37]}..." is not allowed'),
        ({"deploy_watch": {"a": [1, 2]}}, "deploy_watch an object is not allowed"),
        ({"deploy_watch": [[[[1]]]]}, "deploy_watch a list is not allowed"),
        ({"x" * 1000: 1}, f"'{'x' * 37}...': not a setting"),
        ({f"k{i}": 1 for i in range(33)}, "set-config's config names 33 keys: send at most 32 (settings are"),
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
    start = starting_config(flags, ConfigFile(tmp_path))
    assert start.config == DeviceConfig(deploy_watch=0, telemetry_interval=3, log_level="info")
    assert start.changed == ("deploy_watch 12 -> 0", "log_level error -> info")
    assert start.ignored == ""
    assert starting_config(flags, ConfigFile(tmp_path / "new")) == StartingConfig(flags)  # nothing kept: the flags
    (tmp_path / "a-file").write_text("")
    assert ConfigFile(tmp_path / "a-file").load() == ({}, "")  # a state dir that cannot be made fails later, as such


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "is not JSON"),
        (b"\xff\xfe", "is not JSON"),
        (b'{"deploy_watch": -5, "colour": 1}', "'colour': not a setting (settings are"),
        (b'{"deploy_watch": -5}', "deploy_watch -5 is not allowed: use seconds from 0 to 86400"),
        (b'{"min_requests": 1' + b"0" * 5000 + b"}", "is not JSON"),  # past Python's digits for an int
        (b"[" * 100_000 + b"]" * 100_000, "is larger than 64 KiB"),
        (b"[" * 10_000 + b"]" * 10_000, "is not JSON"),  # too deep for the parser
        (b'"deploy_watch"', "set-config needs 'config', an object of settings"),
        (None, "cannot be read"),
    ],
)
def test_a_kept_file_that_is_broken_is_ignored_in_one_line_naming_it(tmp_path, content, words):
    path = tmp_path / CONFIG
    if content is None:
        path.mkdir()  # not a file at all
    else:
        path.write_bytes(content)
    values, ignored = ConfigFile(tmp_path).load()
    assert values == {}
    assert ignored.startswith(str(path))
    assert words in ignored
    assert ignored.endswith(f"; {IGNORED}")
    assert "\n" not in ignored
    assert len(ignored) < 600
    flags = DeviceConfig(deploy_watch=7)
    assert starting_config(flags, ConfigFile(tmp_path)) == StartingConfig(flags, (), ignored)


def test_a_device_started_with_an_ignored_file_writes_a_good_one_at_the_next_command(tmp_path):
    (tmp_path / CONFIG).write_text('{"deploy_watch": 5, "min_requests": 1e30}')
    state, events = State(), []
    command = SetConfig(  # the fleet agent's start reads the file too: not fatal either
        DeviceConfig(),
        ConfigFile(tmp_path),
        deployer=SimpleNamespace(policy=HealthPolicy()),
        telemetry=Intervals(),
        state=state,
        emit=lambda cid, status, detail: events.append((cid, str(getattr(status, "value", status)), detail)),
    )
    assert command.chosen == {}
    assert "min_requests 1e+30" in command.ignored
    assert state.fields["config"] == DeviceConfig().to_json()
    command.run("c1", {"config": {"max_error_rate": 0.5}})
    assert events[0][:2] == ("c1", "done")
    assert json.loads((tmp_path / CONFIG).read_text()) == {"max_error_rate": 0.5}  # the bad values are gone
    assert ConfigFile(tmp_path).load() == ({"max_error_rate": 0.5}, "")


# every key's range: (key, the lowest allowed, the highest allowed, just below, just above)
BOUNDS = [
    ("deploy_watch", 0, 86_400, -0.001, 86_400.001),
    ("max_error_rate", 0, 1, -1e-9, 1.000001),
    ("max_latency_ratio", 1e-9, 1_000, 0, 1_000.001),
    ("min_requests", 0, 1_000_000, -1, 1_000_001),
    ("telemetry_interval", 0.05, 86_400, 0.0499, 86_400.001),
]


def test_every_number_has_a_finite_range_and_the_table_covers_it():
    numbers = {key for key, spec in KEYS.items() if not spec.choices}
    assert numbers == {key for key, *_ in BOUNDS}
    for key in numbers:
        assert math.isfinite(KEYS[key].low)
        assert math.isfinite(KEYS[key].high)
    assert all(len(choice) <= MAX_TEXT for spec in KEYS.values() for choice in spec.choices)


@pytest.mark.parametrize(("key", "lowest", "highest", "below", "above"), BOUNDS)
def test_every_key_takes_its_bounds_and_refuses_past_them(key, lowest, highest, below, above):
    assert check({key: lowest}) == {key: lowest}
    assert check({key: highest}) == {key: highest}
    for value in (below, above):
        with pytest.raises(ConfigError, match=f"^{key} .* is not allowed: use {re.escape(KEYS[key].allowed)}$"):
            check({key: value})
    config = DeviceConfig().changed(check({key: highest}))
    orjson.dumps(config.to_json())
    config.policy()  # the deployer takes it


def test_log_level_takes_its_choices_only():
    for level in LOG_LEVELS:
        assert check({"log_level": level}) == {"log_level": level}
    for value in ("DEBUG", "", "critical", "trace", "x" * (MAX_TEXT + 1), 10):
        with pytest.raises(ConfigError, match=r"log_level .* is not allowed: use one of debug, info, warning, error"):
            check({"log_level": value})


def test_a_command_may_name_every_key_and_a_few_typos_but_not_thousands():
    every = {"deploy_watch": 1, "max_error_rate": 0.1, "max_latency_ratio": 3, "min_requests": 4}
    every |= {"telemetry_interval": 2, "log_level": "info"}
    assert check(every) == {**every, "deploy_watch": 1.0, "max_latency_ratio": 3.0, "telemetry_interval": 2.0}
    typos = {f"typo{i}": 1 for i in range(MAX_KEYS)}
    with pytest.raises(ConfigError) as caught:
        check(typos)
    assert "'typo0', 'typo1'" in str(caught.value)
    with pytest.raises(ConfigError, match="names 33 keys: send at most 32"):
        check({**typos, "deploy_watch": 1})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
NUMBERS = st.integers(min_value=-(10**30), max_value=10**30) | st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from([*KEYS, "colour"]), value=JSON | NUMBERS | st.sampled_from(LOG_LEVELS))
def test_any_json_value_is_refused_in_one_line_or_yields_a_config_that_encodes(key, value):
    try:
        kept = check({key: value})
    except ConfigError as exc:
        refused = str(exc)
    else:
        refused = ""
    if refused:
        assert "\n" not in refused
        assert len(refused) < 400
        return
    config = DeviceConfig().changed(kept)
    assert orjson.loads(orjson.dumps(config.to_json())) == config.to_json()
    config.policy()


def test_a_runtime_with_a_broken_config_json_starts_serves_and_says_so(mosquitto, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / CONFIG).write_text('{"min_requests": 1e30, "deploy_watch": 5}')  # what an old build kept
    args = [str(MLP), "--port", "0", "--state-dir", str(state), "--mqtt", mosquitto.url, "--deploy-watch", "12"]
    server = ServeProcess([*args, "--fleet", "lab", "--device", "pi-7"], tmp_path / "err.log")
    states: list[dict] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = lambda _c, _u, message: states.append(orjson.loads(message.payload))
    try:
        url = server.wait_ready()
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        client.connect("127.0.0.1", mosquitto.port)
        client.subscribe("edgekit/lab/pi-7/state", qos=1)
        client.loop_start()
        deadline = time.monotonic() + 20
        while not any(s.get("status") == "online" for s in states) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        assert server.stop() == 0  # the MQTT thread did not die: a clean stop says offline and exits 0
    online = next(s for s in states if s.get("status") == "online")
    assert online["config"]["min_requests"] == DeviceConfig().min_requests  # the flags' settings, not the file's
    assert online["config"]["deploy_watch"] == 12
    (warning,) = [line for line in server.stderr().splitlines() if "is ignored" in line]
    assert f"{state / CONFIG}: min_requests 1e+30 is not allowed" in warning
    assert warning.endswith(f"; {IGNORED}")


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
