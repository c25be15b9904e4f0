"""docs/telemetry.md's shell blocks, run as written: a device over TLS with a password, a collector over TLS into
PostgreSQL, ``telemetry show``, and the schema tool.

``broker.example:8883`` is a Mosquitto of the test's own with TLS and password logins on a free loopback port
(its certificate is for 127.0.0.1); ``db.example`` is the session's PostgreSQL, in a schema of this test's own.
The files the blocks name (``digits-mlp-1.0.0.edgebundle``, ``keys/``, ``ca.pem``, ``mqtt.pw``,
``collector.pw``, ``fleet.key``) are made under those names; ``/var/lib/edgekit`` is a scratch folder.
"""

from __future__ import annotations

import filecmp
import shlex
import subprocess

import psycopg

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source
from tests.brokers import MOSQUITTO_PASSWD, Mosquitto
from tests.certs import make_pki
from tests.conftest import DIGITS
from tests.docs.blocks import ROOT, find
from tests.docs.conftest import scratch
from tests.docs.shell import DocShell, Tweak

TELEMETRY = "docs/telemetry.md"


def tls_broker(folder, passwords: dict[str, str]) -> Mosquitto:
    """Mosquitto with TLS (``folder/pki``) and a password for each of ``passwords``; no client certificate asked."""
    pki = make_pki(folder / "pki")
    passwd = folder / "passwd"
    passwd.write_text("")
    for user, password in passwords.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), user, password], check=True, capture_output=True)
    extra = f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n"
    return Mosquitto(folder, anonymous=False, extra=f"{extra}password_file {passwd}\n")


def test_device_and_collector_over_tls_into_postgresql(tmp_path, postgres_url):
    work = tmp_path / "work"
    (work / "keys").mkdir(parents=True)
    key, public = generate_keypair(work / "fleet")
    public.rename(work / "keys" / public.name)
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    pack_source(str(DIGITS / "mlp.onnx"), work, BundleOptions(name="digits-mlp", signing_key=key), data)
    broker = tls_broker(tmp_path / "broker", {"pi-7": "device-pw", "collector": "collector-pw"})
    (work / "ca.pem").write_bytes((tmp_path / "broker" / "pki" / "ca.pem").read_bytes())
    (work / "mqtt.pw").write_text("device-pw\n")
    (work / "collector.pw").write_text("collector-pw\n")
    swaps = {
        "mqtts://broker.example:8883": broker.tls_url,
        "/var/lib/edgekit": str(tmp_path / "state"),
        "postgresql://edgekit@db.example/telemetry": shlex.quote(postgres_url),
    }
    broker.start()
    try:
        with DocShell(work, swaps=swaps) as shell:
            (device,) = shell.play(
                find(TELEMETRY, "On the device"),
                {"edgekit-runtime serve": Tweak(extra=("--telemetry-interval", "0.5"))},  # not a window per 10 s
            )
            collected, shown = shell.play(
                find(TELEMETRY, "Collector"),
                {"edgekit telemetry collect": Tweak(stop_when=lambda: _windows(postgres_url) >= 2)},  # until Ctrl-C
            )
    finally:
        broker.stop()
    assert device.out.startswith("serving digits-mlp 1.0.0 on http://127.0.0.1:")
    assert collected.out.startswith("stopped: ")
    assert "pi-7" in shown.out
    assert "digits-mlp" in shown.out


def test_the_schema_tool_rewrites_nothing_on_this_tree(tmp_path):
    work = scratch(tmp_path / "repo", "tools/gen_schema.py", "docs/telemetry.schema.json", "docs/commands.schema.json")
    with DocShell(work) as shell:
        shell.play(find(TELEMETRY, "Messages"))
    for name in ("telemetry.schema.json", "commands.schema.json"):
        assert filecmp.cmp(work / "docs" / name, ROOT / "docs" / name, shallow=False), f"docs/{name} is stale"


def _windows(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=3) as db:
            row = db.execute("SELECT COUNT(*) FROM telemetry WHERE device = 'pi-7'").fetchone()
    except psycopg.errors.UndefinedTable:  # the collector has not made its tables yet
        return 0
    return int(row[0]) if row else 0
