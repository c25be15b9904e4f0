"""``edgekit fleet devices|deploy|rollback|set-config|watch``: user errors are one line; the commands work on a real
broker. Commands to devices are signed: ``--sign-key`` (or ``$EDGEKIT_SIGN_KEY``) is the fleet owner's private key."""

from __future__ import annotations

import json

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from edgekit.bundle.signing import generate_keypair
from edgekit.cli import app
from edgekit.fleet.bundle_source import BundleServer, LocalBundle, check_bundle

runner = CliRunner()


@pytest.fixture
def bundle(tmp_path, digits):
    from edgekit.bundle.pack import BundleOptions
    from edgekit.bundle.source import PackData, pack_source

    data = PackData(calib=digits / "mlp_calib.npz", eval=digits / "mlp_test.npz")
    return pack_source(str(digits / "mlp.onnx"), tmp_path, BundleOptions(name="digits-mlp", version="3.1.0"), data).path


@pytest.fixture
def keys(tmp_path):
    """The fleet owner's key pair: (private, public)."""
    return generate_keypair(tmp_path / "owner")


def _one_line(result, code: int, words: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert words in lines[0]


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [
        (["--canary", "150%"], 2, "--canary '150%' is out of range"),
        (["--abort-if", "error_rate>>1", "--db", "x.db"], 2, "not METRIC OP NUMBER"),
        (["--abort-if", "error_rate>0.1"], 2, "give --db"),
        (["--url", "http://x/b", "--serve", "127.0.0.1:0"], 2, "say where the bundle comes from: give one"),
        (["--chunk-kib", "0"], 2, "--chunk-kib 0: give 1 to 16384"),
        (["--broker", "http://nope"], 2, "is not a broker URL"),
        (["--serve", "nowhere"], 2, "is not HOST:PORT"),
    ],
)
def test_bad_deploy_options_are_one_line(bundle, keys, extra, code, words):
    args = ["fleet", "deploy", str(bundle), "--broker", "mqtt://127.0.0.1:1", "--fleet", "lab", *extra]
    _one_line(runner.invoke(app, [*args, "--sign-key", str(keys[0])]), code, words)


def test_shared_path_is_gone():
    result = runner.invoke(app, ["fleet", "deploy", "b.edgebundle", "--fleet", "lab", "--shared-path"])
    assert result.exit_code == 2
    assert "No such option: --shared-path" in result.stderr


COMMANDS = {
    "deploy": ["fleet", "deploy", "{bundle}"],
    "rollback": ["fleet", "rollback"],
    "set-config": ["fleet", "set-config", "deploy_watch=5"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_command_without_a_sign_key_is_one_line_before_any_broker(bundle, command):
    args = [a.replace("{bundle}", str(bundle)) for a in command]
    result = runner.invoke(
        app, [*args, "--broker", "mqtt://127.0.0.1:1", "--fleet", "lab"], env={"EDGEKIT_SIGN_KEY": None}
    )
    _one_line(result, 2, "fleet commands are signed: give --sign-key KEY (or set EDGEKIT_SIGN_KEY)")


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_public_key_given_as_the_sign_key_is_one_line(bundle, keys, command):
    args = [a.replace("{bundle}", str(bundle)) for a in command]
    result = runner.invoke(app, [*args, "--broker", "mqtt://127.0.0.1:1", "--fleet", "lab", "--sign-key", str(keys[1])])
    _one_line(result, 2, "is a public key: sign with the .key file, and give devices the .pub")


def test_a_sign_key_that_is_not_there_is_one_line(tmp_path):
    args = ["fleet", "rollback", "--broker", "mqtt://127.0.0.1:1", "--fleet", "lab"]
    result = runner.invoke(app, [*args, "--sign-key", str(tmp_path / "none.key")])
    _one_line(result, 2, "does not exist: make one with edgekit keygen")


def test_the_sign_key_may_come_from_the_environment(keys):
    from tests.brokers import free_port

    args = ["fleet", "rollback", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--fleet", "lab"]
    result = runner.invoke(app, args, env={"EDGEKIT_SIGN_KEY": str(keys[0])})
    _one_line(result, 1, "cannot reach the broker")  # past the key: it was read


def test_a_missing_or_foreign_bundle_is_one_line(tmp_path, keys):
    base = ["--broker", "mqtt://127.0.0.1:1", "--fleet", "lab", "--sign-key", str(keys[0])]
    _one_line(runner.invoke(app, ["fleet", "deploy", str(tmp_path / "none.edgebundle"), *base]), 1, "no bundle at")
    notes = tmp_path / "notes.edgebundle"
    notes.write_text("hello")
    _one_line(runner.invoke(app, ["fleet", "deploy", str(notes), *base]), 3, "is not an edgekit bundle")


def test_an_unreachable_broker_is_one_line(keys):
    from tests.brokers import free_port

    args = ["fleet", "rollback", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--fleet", "lab"]
    args += ["--sign-key", str(keys[0])]
    _one_line(runner.invoke(app, args), 1, "cannot reach the broker")


def test_the_bundle_is_checked_and_served_over_http(bundle):
    import urllib.request

    local = check_bundle(bundle)
    assert (local.name, local.version, len(local.sha256)) == ("digits-mlp", "3.1.0", 64)
    with BundleServer(local, "127.0.0.1", 0) as server:
        with urllib.request.urlopen(server.url, timeout=5) as response:  # noqa: S310 (our own loopback server)
            assert response.read() == bundle.read_bytes()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(server.url.rsplit("/", 1)[0] + "/other", timeout=5)  # noqa: S310
    assert isinstance(local, LocalBundle)


def test_devices_lists_the_collectors_database(fleet_db):
    result = runner.invoke(app, ["fleet", "devices", "--db", str(fleet_db), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["device"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"pi-1", "pi-2", "pi-3"}
    assert rows["pi-3"]["status"] == "offline"
    assert rows["pi-2"]["drift"] is True
    table = runner.invoke(app, ["fleet", "devices", "--db", str(fleet_db)])
    assert table.exit_code == 0
    assert "pi-2" in table.stdout
    assert "drift" in table.stdout


def test_devices_with_a_missing_database_is_one_line(tmp_path):
    _one_line(runner.invoke(app, ["fleet", "devices", "--db", str(tmp_path / "no.db")]), 1, "no telemetry database")


def test_watch_once_shows_the_retained_states(mosquitto):
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        state = {"device": "pi-7", "status": "online", "model": {"name": "digits-mlp", "version": "1.0.0"}}
        client.publish("edgekit/watched/pi-7/state", json.dumps(state), qos=1, retain=True).wait_for_publish(5)
        args = ["fleet", "watch", "--broker", mosquitto.url, "--fleet", "watched"]
        table = runner.invoke(app, [*args, "--once"])
        lines = runner.invoke(app, [*args, "--duration", "1", "--json"])
    finally:
        client.loop_stop()
        client.disconnect()
    assert table.exit_code == 0, table.output
    assert "pi-7" in table.stdout
    assert "digits-mlp 1.0.0" in table.stdout
    assert lines.exit_code == 0, lines.output
    assert json.loads(lines.stdout.splitlines()[0])["device"] == "pi-7"


@pytest.mark.parametrize(
    ("pairs", "words"),
    [(["deploy_watch"], "is not KEY=VALUE"), (["a=1", "a=2"], "a is given twice"), (["a=[1]"], "not a JSON")],
)
def test_bad_set_config_settings_are_one_line_before_any_broker(pairs, words):
    args = ["fleet", "set-config", *pairs, "--broker", "mqtt://127.0.0.1:1", "--fleet", "lab"]
    _one_line(runner.invoke(app, args), 2, words)
