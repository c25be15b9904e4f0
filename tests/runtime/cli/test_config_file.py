"""``edgekit-runtime serve --config FILE``: TOML whose keys are the command's flags, checked as the flags are."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit_runtime import cli
from edgekit_runtime.cli import main
from edgekit_runtime.errors import ConfigError

MLP = Path(__file__).resolve().parents[3] / "examples" / "digits" / "mlp.onnx"

FULL = """
model = "models/digits.onnx"
trust = ["keys/ops.pub", "/etc/edgekit/trusted"]

[server]
host = "192.168.1.20"
port = 9000
threads = 2
log-level = "info"

[telemetry]
fleet = "lab"
device = "pi-7"
state-dir = "state"
telemetry-interval = 2.5
outbox_max_mb = 8

[mqtt]
url = "mqtts://broker.lan:8883"
ca = "/etc/edgekit/ca.pem"
username = "pi-7"
password-file = "secrets/mqtt.password"
protocol = "3.1.1"
"""


def write(tmp_path, text, name="edgekit.toml"):
    path = tmp_path / "etc" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def parse(path, *argv):
    """The serve command's arguments with ``path`` applied, as ``main`` does it."""
    return cli.parse(["serve", "--config", str(path), *argv])


def refused(capsys, argv):
    """Run ``main``; the exit code and the one line it printed."""
    code = main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return code, lines[0]


def test_keys_in_tables_become_the_flags(tmp_path):
    path = write(tmp_path, FULL)
    folder = path.parent
    args = parse(path)
    assert args.model == folder / "models" / "digits.onnx"
    assert args.trust == [folder / "keys" / "ops.pub", Path("/etc/edgekit/trusted")]
    assert (args.host, args.port, args.threads, args.log_level) == ("192.168.1.20", 9000, 2, "info")
    assert (args.fleet, args.device, args.telemetry_interval, args.outbox_max_mb) == ("lab", "pi-7", 2.5, 8.0)
    assert args.state_dir == folder / "state"
    assert args.mqtt == "mqtts://broker.lan:8883"  # [mqtt] url is --mqtt
    assert args.mqtt_ca == Path("/etc/edgekit/ca.pem")
    assert args.mqtt_username == "pi-7"
    assert args.mqtt_password_file == folder / "secrets" / "mqtt.password"
    assert args.mqtt_protocol == "3.1.1"
    assert args.no_telemetry is False


def test_top_level_keys_and_underscores_work_too(tmp_path):
    path = write(tmp_path, 'state_dir = "/var/lib/edgekit"\nmqtt = "mqtt://broker.lan"\nmqtt-ca = "ca.pem"\n')
    args = parse(path)
    assert args.state_dir == Path("/var/lib/edgekit")
    assert args.mqtt == "mqtt://broker.lan"
    assert args.mqtt_ca == path.parent / "ca.pem"


def test_switches_take_true_or_false(tmp_path):
    assert parse(write(tmp_path, "[telemetry]\nno-telemetry = true\n")).no_telemetry is True
    assert parse(write(tmp_path, "[telemetry]\nno-telemetry = false\n")).no_telemetry is False
    assert parse(write(tmp_path, "allow-unsigned = true\n")).allow_unsigned is True


def test_flags_on_the_command_line_win_over_the_file(tmp_path):
    path = write(tmp_path, FULL)
    args = parse(
        path,
        str(MLP),
        "--port",
        "7000",
        "--fleet",
        "field",
        "--state-dir",
        "here",
        "--mqtt",
        "mqtt://other.lan",
        "--mqtt-protocol",
        "5",
    )
    assert args.model == MLP
    assert args.port == 7000
    assert args.fleet == "field"
    assert args.state_dir == Path("here")  # a flag's path is the shell's: relative to where it runs
    assert args.mqtt == "mqtt://other.lan"
    assert args.mqtt_protocol == "5"
    assert args.device == "pi-7"  # what the command line does not give still comes from the file


def test_what_the_file_leaves_out_keeps_the_flags_defaults(tmp_path):
    args = parse(write(tmp_path, "[server]\nport = 9001\n"))
    defaults = cli.parse(["serve"])
    for name, value in vars(defaults).items():
        if name not in ("port", "run"):
            assert getattr(args, name) == value, name


def test_an_unknown_key_is_one_line_naming_the_valid_ones(tmp_path, capsys):
    path = write(tmp_path, "[server]\ncolour = 'blue'\n")
    code, line = refused(capsys, ["serve", "--config", str(path)])
    assert code == ConfigError.exit_code == 2
    assert f"error: --config {path}: unknown key 'colour': use one of " in line
    known = line.rsplit("use one of ", 1)[1].split(", ")
    assert {"model", "port", "fleet", "state-dir", "mqtt", "mqtt-password-file", "no-telemetry"} <= set(known)
    assert "help" not in known
    assert "config" not in known
    assert known == sorted(known)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt]\npassword = 'x'\n", "unknown key 'mqtt-password'"),  # [mqtt] keys are --mqtt-* flags
        ("config = 'other.toml'\n", "unknown key 'config'"),
        ("help = true\n", "unknown key 'help'"),
        ("[colours]\nport = 1\n", "unknown key 'colours'"),
    ],
)
def test_keys_that_are_not_flags_are_refused(tmp_path, capsys, text, message):
    code, line = refused(capsys, ["serve", "--config", str(write(tmp_path, text))])
    assert code == 2
    assert message in line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = [8080, 8081]\n", "'port' takes one value, not a list"),
        ("[server]\nport = {number = 8080}\n", "'port' takes one value, not a table"),
        ("[server]\nport = 70000\n", "'port': 70000 is not a TCP port: use 1 to 65535"),
        ("[server]\nport = 'http'\n", "'port': 'http' is not a port number"),
        ("[server]\nthreads = true\n", "'threads' has a value of the wrong kind (True)"),
        ("[server]\nthreads = 0\n", "'threads': 0 is not a positive count"),
        ("[server]\nlog-level = 'loud'\n", "'log-level' is 'loud': use one of"),
        ("[telemetry]\nno-telemetry = 'yes'\n", "'no-telemetry' is a switch: use true or false"),
        ("[telemetry]\ntelemetry-interval = 0.001\n", "'telemetry-interval': 0.001 is out of range"),
        ("[mqtt]\nprotocol = 4\n", "'mqtt-protocol' is '4': use one of 5, 3.1.1"),
        ("trust = [['nested.pub']]\n", "'trust' has a value of the wrong kind"),
    ],
)
def test_values_of_the_wrong_kind_are_refused(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    code, line = refused(capsys, ["serve", "--config", str(path)])
    assert code == 2
    assert line.startswith(f"error: --config {path}: ")
    assert message in line


def test_invalid_toml_is_refused(tmp_path, capsys):
    path = write(tmp_path, "[server\nport = 8080\n")
    code, line = refused(capsys, ["serve", "--config", str(path)])
    assert code == 2
    assert f"--config {path} is not valid TOML (" in line
    assert line.endswith("): fix the file")


def test_a_file_that_is_not_text_is_refused(tmp_path, capsys):
    path = tmp_path / "edgekit.toml"
    path.write_bytes(b"\xff\xfe\x00port = 1")
    code, line = refused(capsys, ["serve", "--config", str(path)])
    assert code == 2
    assert "is not valid TOML" in line


def test_a_missing_file_is_refused(tmp_path, capsys):
    path = tmp_path / "nowhere.toml"
    code, line = refused(capsys, ["serve", "--config", str(path)])
    assert code == 2
    assert line == f"error: --config {path}: cannot read it (No such file or directory)"


def test_a_folder_is_not_a_config_file(tmp_path, capsys):
    code, line = refused(capsys, ["serve", "--config", str(tmp_path)])
    assert code == 2
    assert f"--config {tmp_path}: cannot read it (" in line


def test_the_files_values_are_checked_together_before_serving(tmp_path, capsys):
    path = write(tmp_path, f'model = "{MLP}"\n[telemetry]\nno-telemetry = true\n[mqtt]\nurl = "mqtt://broker.lan"\n')
    code, line = refused(capsys, ["serve", "--config", str(path), "--port", "0"])
    assert code == 2
    assert line == "error: --mqtt sends telemetry and --no-telemetry turns it off: give one of them"


def test_a_bad_name_in_the_file_is_refused_as_the_flag_is(tmp_path, capsys):
    path = write(tmp_path, f'model = "{MLP}"\n[telemetry]\nfleet = "lab/1"\n')
    code, line = refused(capsys, ["serve", "--config", str(path), "--port", "0", "--state-dir", str(tmp_path)])
    assert code == 2
    assert "--fleet 'lab/1' cannot be an MQTT topic level" in line


def test_a_file_without_a_model_asks_for_one(tmp_path, capsys):
    path = write(tmp_path, "[server]\nport = 0\n")
    code, line = refused(capsys, ["serve", "--config", str(path)])
    assert code == 2
    assert line == "error: no model to serve: give MODEL, or 'model' in --config"


def test_trust_and_group_on_the_command_line_add_to_the_files(tmp_path):
    path = write(tmp_path, 'trust = ["keys/ops.pub"]\n[telemetry]\ngroup = ["lab"]\n')
    args = parse(path, "--trust", "/etc/edgekit/more.pub", "--group", "gpu")
    assert args.trust == [path.parent / "keys" / "ops.pub", Path("/etc/edgekit/more.pub")]
    assert args.group == ["lab", "gpu"]
