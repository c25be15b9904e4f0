"""``edgekit-runtime serve``'s telemetry flags: what cannot work is refused in one line, before serving starts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgekit_runtime.cli import main, parse
from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings

MLP = Path(__file__).resolve().parents[3] / "examples" / "digits" / "mlp.onnx"


@pytest.fixture
def serve(tmp_path, capsys):
    """``main(["serve", MLP, ...])`` on a free port with its own state directory: (exit code, stderr line)."""

    def run(*flags, model=MLP):
        argv = ["serve", *([] if model is None else [str(model)]), "--port", "0"]
        if "--state-dir" not in flags:
            argv += ["--state-dir", str(tmp_path / "state")]
        code = main([*argv, *map(str, flags)])
        captured = capsys.readouterr()
        assert "serving" not in captured.out
        assert "Traceback" not in captured.err
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("error: ")
        return code, lines[0].removeprefix("error: ")

    return run


@pytest.fixture
def pem(tmp_path):
    for name in ("ca.pem", "client.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def test_mqtt_with_no_telemetry_is_refused(serve):
    assert serve("--mqtt", "mqtt://broker.lan", "--no-telemetry") == (
        2,
        "--mqtt sends telemetry and --no-telemetry turns it off: give one of them",
    )


@pytest.mark.parametrize(
    "flags",
    [
        ["--mqtt-ca", "ca.pem"],
        ["--mqtt-username", "pi-7"],
        ["--mqtt-cert", "client.pem", "--mqtt-key", "client.pem"],
    ],
)
def test_mqtt_options_without_a_broker_are_refused(serve, pem, flags):
    flags = [str(pem / f) if f.endswith(".pem") else f for f in flags]
    assert serve(*flags) == (2, "the --mqtt-* options need a broker: add --mqtt URL")


@pytest.mark.parametrize(("flag", "name"), [("--fleet", "lab/1"), ("--fleet", "+"), ("--device", "pi 7")])
def test_names_that_cannot_be_topic_levels_are_refused(serve, flag, name):
    code, line = serve(flag, name)
    assert code == 2
    assert line.startswith(f"{flag} '{name}' cannot be an MQTT topic level")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker.lan", "is not a broker URL"),
        ("mqtt://broker.lan/edgekit", "has a path or query"),
        ("mqtt://broker.lan:88888", "not a TCP port"),
    ],
)
def test_bad_broker_urls_are_refused(serve, url, message):
    code, line = serve("--mqtt", url)
    assert code == 2
    assert line.startswith(f"--mqtt '{url}'")
    assert message in line


def test_broker_files_are_checked(serve, pem, tmp_path):
    assert serve("--mqtt", "mqtt://broker.lan", "--mqtt-password-file", tmp_path / "nope") == (
        2,
        f"--mqtt-password-file {tmp_path / 'nope'}: no such file",
    )
    code, line = serve("--mqtt", "mqtt://broker.lan", "--mqtt-ca", pem / "ca.pem")
    assert (code, line) == (2, "--mqtt-ca and --mqtt-cert need TLS: use an mqtts:// URL")
    code, line = serve("--mqtt", "mqtts://broker.lan", "--mqtt-cert", pem / "client.pem")
    assert code == 2
    assert "needs both --mqtt-cert and --mqtt-key" in line


def test_a_state_dir_in_use_by_another_runtime_is_refused(serve, tmp_path):
    state = tmp_path / "shared-state"
    other = Telemetry(TelemetrySettings(state_dir=state, fleet="lab", device="pi-7"), {"name": "other"}, None)
    try:
        code, line = serve("--state-dir", state)
        assert code == 2
        assert line == f"--state-dir {state} is in use by another edgekit-runtime: give each its own --state-dir"
        other.record(0.001)  # the runtime that holds it goes on undisturbed
        assert other.recorder.close_window() is not None
    finally:
        other.stop()
    # once it has stopped, the folder is free again: the lock went with it
    again = Telemetry(TelemetrySettings(state_dir=state, fleet="lab", device="pi-7"), {"name": "next"}, None)
    again.stop()


def test_a_state_dir_that_cannot_be_made_is_refused(serve, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, line = serve("--state-dir", blocker / "state")
    assert code == 2
    assert line.startswith(f"--state-dir {blocker / 'state'} cannot be used (")
    assert line.endswith("): give a writable folder")


class Lines(logging.Handler):
    """A logger's lines (a handler of its own: an earlier in-process server may have stopped propagation)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_set_config_file_that_cannot_be_used_is_ignored_with_a_warning(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.json").write_text('{"deploy_watch": -5}')
    logger, lines = logging.getLogger("edgekit_runtime.fleet"), Lines()
    logger.addHandler(lines)
    try:  # a flag refused after the file was read: the start went past it (tests/runtime/fleet has one serving)
        code = main(["serve", str(MLP), "--port", "0", "--state-dir", str(state), "--max-delay-ms", "5"])
    finally:
        logger.removeHandler(lines)
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: --max-delay-ms needs --max-batch: give both, or neither"
    (warning,) = lines.lines
    assert warning.startswith(f"{state / 'config.json'}: deploy_watch -5 is not allowed: use seconds from 0 to 86400")
    assert warning.endswith(
        "it is ignored and the command line's settings apply: fix it, or delete it (the next "
        "set-config writes a new one)"
    )


def test_a_deploy_watch_of_0_is_taken():
    assert parse(["serve", str(MLP), "--deploy-watch", "0"]).deploy_watch == 0


def test_no_model_is_refused(serve):
    assert serve(model=None) == (2, "no model to serve: give MODEL, or 'model' in --config")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--telemetry-interval", "0"], "argument --telemetry-interval: 0.0 is out of range"),
        (["--telemetry-interval", "often"], "argument --telemetry-interval: 'often' is not a number of seconds"),
        (["--outbox-max-mb", "0"], "argument --outbox-max-mb: 0.0 keeps nothing"),
        (["--mqtt-protocol", "4"], "argument --mqtt-protocol: invalid choice: '4'"),
        (["--deploy-watch", "-1"], "argument --deploy-watch: -1.0 is out of range: use 0 to 86400 seconds"),
    ],
)
def test_flag_values_are_refused_by_the_parser(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(MLP), "--state-dir", str(tmp_path), *flags])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1
