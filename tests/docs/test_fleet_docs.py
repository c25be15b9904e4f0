"""docs/fleet.md's shell blocks, run as written against a real Mosquitto and real devices.

``mqtt://broker`` (and ``@broker``) is a Mosquitto of the test's own on a free loopback port. "From the host"
needs a fleet to steer: two devices, ``pi-1`` and ``pi-2`` in group ``shop``, serving the signed digits MLP 1.0.0
and trusting ``fleet.pub``, and a collector writing ``telemetry.db``, all started by the test first; its
``--serve 10.0.0.5:8700`` is ``127.0.0.1:0`` (this machine, a free port). The provisioning block writes the
broker's accounts, which the test's Mosquitto then reads, and the clients' block logs in with them.

Tweaks, for speed only: the devices commit a deploy after 1 s of watching instead of 30 and send a window every
half second; the deploy's canary bake is 2 s instead of 30; provisioning names the test broker's port.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source
from tests.brokers import Mosquitto, free_port
from tests.conftest import DIGITS
from tests.docs.blocks import find
from tests.docs.shell import BIN, DocShell, Tweak
from tests.docs.stores import states, windows
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess

FLEET = "docs/fleet.md"
BROKER_HEADING = "Broker: one identity per device"
FAST_DEVICE = ("--deploy-watch", "1", "--telemetry-interval", "0.5")


@pytest.fixture
def fleet_folder(tmp_path):
    """``work/`` with ``fleet.key``, ``fleet.pub`` and the signed digits MLP bundles 1.0.0 and 2.0.0."""
    work = tmp_path / "work"
    work.mkdir()
    key, _ = generate_keypair(work / "fleet")
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    for version in ("1.0.0", "2.0.0"):
        options = BundleOptions(name="digits-mlp", version=version, signing_key=key)
        pack_source(str(DIGITS / "mlp.onnx"), work, options, data)
    return work


def after(seconds: float):
    """A ``stop_when`` that turns true ``seconds`` after its first call."""
    start: list[float] = []

    def due() -> bool:
        start[:] = start or [time.monotonic()]
        return time.monotonic() - start[0] >= seconds

    return due


def versions(server: ServeProcess) -> list[str]:
    return httpx.get(f"{server.url}/v2/models/digits-mlp", timeout=10).json()["versions"]


def test_from_the_host_deploy_rollback_set_config_watch_devices(fleet_folder, mosquitto):
    work = fleet_folder
    devices = [
        ServeProcess(
            ["digits-mlp-1.0.0.edgebundle", "--trust", "fleet.pub", "--mqtt", mosquitto.url, "--fleet", "lab",
             "--device", name, "--group", "shop", *FAST_DEVICE, "--port", "0"],
            work.parent / f"{name}.log",
            cwd=work,
        )
        for name in ("pi-1", "pi-2")
    ]  # fmt: skip
    collect = [f"{BIN}/edgekit", "telemetry", "collect", "--broker", mosquitto.url, "--db", "telemetry.db"]
    collector = subprocess.Popen(collect, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    swaps = {"mqtt://broker": mosquitto.url, "10.0.0.5:8700": "127.0.0.1:0"}
    tweaks = {
        "edgekit fleet deploy": Tweak(extra=("--bake", "2")),
        "edgekit fleet watch": Tweak(stop_when=after(3)),  # "until Ctrl-C"
    }
    try:
        for device in devices:
            device.wait_ready()
        wait_for(lambda: states(work / "telemetry.db") == {"pi-1", "pi-2"}, 30, "both devices in telemetry.db")
        with DocShell(work, swaps=swaps) as shell:
            _, deployed, rolled_back, configured, watched, listed = shell.play(find(FLEET, "From the host"), tweaks)
        assert [versions(device) for device in devices] == [["1.0.0"], ["1.0.0"]]  # rolled back, after the deploy
    finally:
        for device in devices:
            device.stop()
        collector.terminate()
        collector.wait(30)
    assert "committed" in deployed.out
    assert "rolled_back" in rolled_back.out
    assert "done" in configured.out
    for out in (watched.out, listed.out):
        assert "pi-1" in out
        assert "pi-2" in out


def test_provision_then_each_client_logs_in_with_its_own_account(fleet_folder, tmp_path):
    work = fleet_folder
    port = free_port()
    with DocShell(work) as shell:
        (provisioned,) = shell.play(
            find(FLEET, BROKER_HEADING),
            {"edgekit fleet provision": Tweak(extra=("--port", str(port), "--bind", "127.0.0.1"))},  # the test's port
        )
    passwords = [path.read_text().strip() for path in (work / "broker-lab" / "accounts").glob("*.password")]
    assert len(passwords) == 5  # pi-1, pi-2, pi-3, operator, collector
    assert not [password for password in passwords if password in provisioned.out + provisioned.err]  # never printed
    broker = Mosquitto(tmp_path / "mosquitto", port, include=work / "broker-lab")
    broker.start()
    shutil.copy2(work / "broker-lab" / "accounts" / "pi-1.password", work / "mqtt.password")  # "copy … to it"
    swaps = {
        "mqtt://broker": broker.url,
        "@broker": f"@127.0.0.1:{port}",
        "/etc/edgekit/mqtt.password": "mqtt.password",
    }
    tweaks = {
        "edgekit-runtime serve": Tweak(extra=FAST_DEVICE),
        "edgekit telemetry collect": Tweak(stop_when=lambda: windows(work / "telemetry.db", "pi-1") >= 2),
    }
    try:
        with DocShell(work, swaps=swaps) as shell:
            device, collected, deployed = shell.play(find(FLEET, BROKER_HEADING, 1), tweaks)
            assert device.server is not None
            assert versions(device.server) == ["2.0.0"]
    finally:
        broker.stop()
    assert collected.out.startswith("stopped: ")
    assert "committed" in deployed.out
