"""``edgekit fleet provision``: merging into a folder, and the command's lines (hashes and ACL: test_broker_*.py).

A real broker reading these files is tests/integration/test_broker_acl.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import ConfigError, FleetError
from edgekit.fleet.broker_accounts import Device
from edgekit.fleet.broker_passwords import PasswordHash
from edgekit.fleet.provision import ProvisionRequest, provision

runner = CliRunner()


def lab(*devices: Device, **changes) -> ProvisionRequest:
    return ProvisionRequest(fleet="lab", devices=devices, **changes)


def hashes(folder) -> dict[str, str]:
    lines = (folder / "mosquitto.passwd").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines)


def mode(path) -> int:
    return path.stat().st_mode & 0o777


# -- the folder --


def test_a_new_folder_gets_every_file_with_private_passwords(tmp_path):
    folder = tmp_path / "broker"
    done = provision(folder, lab(Device("pi-1", ("lobby",)), Device("pi-2"), port=8884, bind="10.0.0.2"))
    assert done.created == ("operator", "collector", "pi-1", "pi-2")
    assert (done.rotated, done.kept, done.removed) == ((), (), ())
    stored = hashes(folder)
    assert list(stored) == ["operator", "collector", "pi-1", "pi-2"]
    for name, text in stored.items():
        password = done.password_file(name).read_text()
        assert password.endswith("\n")
        assert PasswordHash.parse(text).matches(password.strip())
        assert mode(done.password_file(name)) == 0o600
    assert mode(folder / "mosquitto.passwd") == 0o600
    assert mode(folder / "accounts") == 0o700
    assert mode(folder / "mosquitto.acl") == 0o644
    conf = (folder / "mosquitto.conf").read_text().splitlines()
    settings = [line for line in conf if line and not line.startswith("#")]
    assert settings == [
        "listener 8884 10.0.0.2",
        "allow_anonymous false",
        f"password_file {folder.resolve() / 'mosquitto.passwd'}",
        f"acl_file {folder.resolve() / 'mosquitto.acl'}",
    ]
    assert "#listener 8883 10.0.0.2" in conf
    assert "#require_certificate true" in conf
    plan = json.loads((folder / "provision.json").read_text())
    assert plan["devices"] == {"pi-1": ["lobby"], "pi-2": []}
    assert plan["listener"] == {"port": 8884, "bind": "10.0.0.2", "broker_dir": None}


def test_running_again_adds_devices_and_keys_nobody_else_again(tmp_path):
    folder = tmp_path / "broker"
    provision(folder, lab(Device("pi-1", ("lobby",)), Device("pi-2"), port=8884))
    before = hashes(folder)
    files = {name: (folder / "accounts" / f"{name}.password").read_text() for name in before}
    done = provision(folder, lab(Device("pi-3", ("lobby",))))
    assert (done.created, done.rotated) == (("pi-3",), ())
    assert done.kept == ("operator", "collector", "pi-1", "pi-2")
    after = hashes(folder)
    assert {name: after[name] for name in before} == before
    assert {name: done.password_file(name).read_text() for name in before} == files
    assert "user pi-3" in (folder / "mosquitto.acl").read_text()
    assert "listener 8884\n" in (folder / "mosquitto.conf").read_text()  # the folder's port, not the default


def test_rotate_remove_and_regroup(tmp_path):
    folder = tmp_path / "broker"
    provision(folder, lab(Device("pi-1", ("lobby",)), Device("pi-2"), Device("pi-3")))
    before, old = hashes(folder), (folder / "accounts" / "pi-2.password").read_text()
    done = provision(folder, lab(Device("pi-1", ("cams",)), rotate=("pi-2", "collector"), remove=("pi-3",)))
    assert (done.created, done.rotated, done.removed) == ((), ("collector", "pi-2"), ("pi-3",))
    after = hashes(folder)
    assert list(after) == ["operator", "collector", "pi-1", "pi-2"]
    assert after["pi-1"] == before["pi-1"]
    assert after["pi-2"] != before["pi-2"]
    assert done.password_file("pi-2").read_text() != old
    assert PasswordHash.parse(after["pi-2"]).matches(done.password_file("pi-2").read_text().strip())
    assert not (folder / "accounts" / "pi-3.password").exists()
    acl = (folder / "mosquitto.acl").read_text()
    assert "edgekit/lab/@cams/cmd" in acl
    assert "@lobby" not in acl
    assert "pi-3" not in acl


def test_a_password_file_without_its_hash_is_hashed_not_replaced(tmp_path):
    folder = tmp_path / "broker"
    provision(folder, lab(Device("pi-1")))
    (folder / "accounts" / "pi-2.password").write_text("chosen-by-hand\n")
    done = provision(folder, lab(Device("pi-2")))
    assert "pi-2" in done.kept
    assert PasswordHash.parse(hashes(folder)["pi-2"]).matches("chosen-by-hand")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: lab(Device("pi 1")), "--device 'pi 1' cannot be an MQTT topic level"),
        (lambda: lab(Device("pi-1", ("a/b",))), "--group 'a/b' cannot be an MQTT topic level"),
        (lambda: lab(Device("+")), "--device '+' cannot be an MQTT topic level"),
        (lambda: ProvisionRequest(fleet="lab/x"), "--fleet 'lab/x' cannot be an MQTT topic level"),
        (lambda: lab(Device("operator")), "--device operator is the operator's account"),
        (lambda: lab(operator="ops", collector="ops"), "--operator and --collector are both 'ops'"),
        (lambda: lab(Device("pi-1"), Device("pi-1", ("x",))), "--device pi-1 is given twice"),
        (lambda: lab(rotate=("pi-9",)), "--rotate pi-9 has no account in"),
        (lambda: lab(remove=("pi-9",)), "--remove pi-9 is not a provisioned device"),
        (lambda: lab(Device("pi-1"), remove=("pi-1",)), "--remove pi-1 is also given to --device or --rotate"),
        (lambda: lab(port=70000), "--port 70000 is not a TCP port"),
        (lambda: lab(bind="a b"), "--bind 'a b' is not an address"),
        (lambda: lab(broker_dir=Path("/etc/mos quitto")), "/etc/mos quitto has a space"),
        (lambda: ProvisionRequest(fleet="other"), "provisions fleet 'lab', not 'other': give --fleet lab"),
        (lambda: lab(operator="ops"), "--operator ops: this folder's operator is 'operator'"),
    ],
)
def test_what_cannot_work_is_one_line_and_writes_nothing(tmp_path, make, words):
    folder = tmp_path / "broker"
    provision(folder, lab(Device("pi-1")))
    before = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    with pytest.raises(ConfigError) as caught:
        provision(folder, make())
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)
    assert {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before


def test_folders_that_are_not_ours_are_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"holds files but no provision\.json"):
        provision(tmp_path / "notes", lab(Device("pi-1")))
    folder = tmp_path / "broker"
    provision(folder, lab(Device("pi-1")))
    with (folder / "mosquitto.passwd").open("a") as passwd:
        passwd.write("admin:$7$101$AAAA$BBBB\n")
    with pytest.raises(ConfigError, match=r"has an account 'admin' that provision\.json does not"):
        provision(folder, lab(Device("pi-2")))
    (folder / "provision.json").write_text("{")
    with pytest.raises(ConfigError, match=r"provision.json cannot be read .*: restore it"):
        provision(folder, lab())


def test_a_folder_that_cannot_be_made_is_a_fleet_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FleetError, match=r"cannot be written .*: give a folder you can write"):
        provision(tmp_path / "file" / "broker", lab(Device("pi-1")))


def test_broker_dir_names_where_the_broker_reads_the_files(tmp_path):
    provision(tmp_path / "b", lab(Device("pi-1"), broker_dir=Path("/etc/mosquitto/lab")))
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    assert "password_file /etc/mosquitto/lab/mosquitto.passwd\n" in conf
    assert "acl_file /etc/mosquitto/lab/mosquitto.acl\n" in conf


# -- the command --


def test_the_command_says_what_to_hand_to_whom(tmp_path):
    folder = tmp_path / "broker"
    args = ["fleet", "provision", str(folder), "--fleet", "lab", "--device", "pi-1:lobby,cams", "--device", "pi-2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"fleet lab: 4 accounts in {folder} (4 new, 0 rotated, 0 kept)"
    assert lines[1].startswith(f"broker: include {folder / 'mosquitto.conf'}")
    assert lines[2] == (
        "operator: edgekit fleet deploy|rollback|set-config|watch --fleet lab"
        f' --broker "mqtt://operator:$(cat {folder / "accounts/operator.password"})@BROKER"'
    )
    assert lines[3] == (
        "collector: edgekit telemetry collect --broker mqtt://BROKER --fleet lab --username collector"
        f" --password-file {folder / 'accounts/collector.password'}"
    )
    assert lines[4].startswith(f"pi-1: copy {folder / 'accounts/pi-1.password'} to the device; ")
    assert lines[4].endswith(
        "--fleet lab --device pi-1 --group cams --group lobby --mqtt-username pi-1 --mqtt-password-file FILE"
    )
    assert len(lines) == 6
    for line in lines:  # no password is printed
        for name in ("operator", "collector", "pi-1", "pi-2"):
            assert (folder / "accounts" / f"{name}.password").read_text().strip() not in line
    again = runner.invoke(app, [*args[:5], "--device", "pi-3", "--rotate", "pi-2", "--port", "8884"])
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == f"fleet lab: 5 accounts in {folder} (1 new, 1 rotated, 3 kept)"
    assert [line.split(":")[0] for line in again.stdout.splitlines()[2:]] == ["pi-3", "pi-2"]
    assert "--mqtt mqtt://BROKER:8884 " in again.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--device", "pi 1"], "error: --device 'pi 1' cannot be an MQTT topic level: use 1 to 64 characters"),
        (["--device", "pi-1:"], "error: --device 'pi-1:' names no group after ':': write ID or ID:GROUP,GROUP"),
        (["--device", "pi-1:a+b"], "error: --group 'a+b' cannot be an MQTT topic level"),
        (["--device", "collector"], "error: --device collector is the collector's account"),
        (["--fleet", "#"], "error: --fleet '#' cannot be an MQTT topic level"),
        (["--rotate", "pi-1"], "error: --rotate pi-1 has no account in"),
        (["--port", "0"], "error: --port 0 is not a TCP port: use 1 to 65535"),
        (["--broker-dir", "etc/mosquitto"], "error: --broker-dir etc/mosquitto is relative"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    result = runner.invoke(app, ["fleet", "provision", str(tmp_path / "broker"), "--fleet", "lab", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(words)
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert not (tmp_path / "broker").exists()


def test_the_fleet_is_required():
    result = runner.invoke(app, ["fleet", "provision", "somewhere"])
    assert result.exit_code == 2
    assert "--fleet" in result.output
