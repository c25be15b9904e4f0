"""Issue 22: a deploy and a rollback on a device serving with ``--workers 2``, under load, fail no request, and
every worker ends on the same model."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from tests.integration.fleet_rig import DIGITS, FleetRecorder, device_args, signed_digits
from tests.integration.rig import Load, wait_for
from tests.integration.test_fleet_deploy import slow_digits_model
from tests.runtime.server.process import ServeProcess

FLEET = "workers"
#: connections of the load: the kernel spreads connections over the workers, so enough that each gets some
CONNECTIONS = 8


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A key pair, and the digits MLP signed with it as 1.0.0 and 2.0.0."""
    return signed_digits(tmp_path_factory.mktemp("signed"))


@pytest.fixture
def operator(signed, mosquitto):
    watching = FleetRecorder(mosquitto.port, FLEET, sign_key=signed[0].with_suffix(".key"))
    yield watching
    watching.close()


def _device(name, bundle, public, broker, folder) -> ServeProcess:
    args = device_args(bundle, public, broker, FLEET, name, folder, "--workers", "2", "--deploy-watch", "2")
    server = ServeProcess(args, folder / f"{name}.log")
    server.wait_ready()
    return server


def _versions(url: str, connections: int = 16) -> set[str]:
    """The model version each of ``connections`` new connections is answered by (both workers, by the spread)."""
    seen = set()
    for _ in range(connections):
        with httpx.Client(base_url=url, timeout=30) as client:
            seen.update(client.get("/v2/models/digits-mlp").json()["versions"])
    return seen


def _spread(url: str) -> list[float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return [float(line.split()[-1]) for line in text.splitlines() if line.startswith("edgekit_worker_requests_total{")]


def test_a_deploy_under_load_reaches_both_workers_without_a_failed_request(signed, mosquitto, operator, tmp_path):
    public, bundles = signed
    server = _device("pi-w1", bundles["1.0.0"], public, mosquitto, tmp_path)
    load = Load(server.url, 1_000_000, threads=CONNECTIONS).start(np.load(DIGITS / "mlp_test.npz")["input"])
    try:
        operator.wait_online("pi-w1")
        wait_for(lambda: load.done > 200, 20, "load")
        assert min(_spread(server.url)) > 0  # both workers serve the load
        command = operator.deploy("pi-w1", bundles["2.0.0"])
        wait_for(lambda: {"committed", "rolled_back"} & set(operator.statuses(command, "pi-w1")), 60, "a verdict")
        done = load.done
        wait_for(lambda: load.done > done + 100, 20, "load after the deploy")
    finally:
        load.stop()  # asserts that no request failed
        versions = _versions(server.url)
        server.stop()
    assert operator.statuses(command, "pi-w1")[-1] == "committed", server.stderr()
    assert versions == {"2.0.0"}
    assert operator.states["pi-w1"]["model"]["version"] == "2.0.0"


def test_a_slow_bundle_is_rolled_back_in_both_workers_without_a_failed_request(signed, mosquitto, operator, tmp_path):
    public, bundles = signed
    slow = pack_source(
        str(slow_digits_model(tmp_path / "slow.onnx")),
        tmp_path,
        BundleOptions(name="digits-mlp", version="3.0.0", signing_key=public.with_suffix(".key")),
        PackData(calib=DIGITS / "mlp_calib.npz"),
    ).path
    server = _device("pi-w2", bundles["1.0.0"], public, mosquitto, tmp_path)
    load = Load(server.url, 1_000_000, threads=CONNECTIONS).start(np.load(DIGITS / "mlp_test.npz")["input"])
    try:
        operator.wait_online("pi-w2")
        wait_for(lambda: load.done > 200, 20, "load")
        command = operator.deploy("pi-w2", slow)
        wait_for(lambda: {"committed", "rolled_back"} & set(operator.statuses(command, "pi-w2")), 60, "a verdict")
        done = load.done
        wait_for(lambda: load.done > done + 100, 20, "load after the rollback")
        time.sleep(0.2)
    finally:
        load.stop()
        versions = _versions(server.url)
        server.stop()
    assert operator.statuses(command, "pi-w2")[-1] == "rolled_back", server.stderr()
    verdict = next(e for e in operator.events if e["id"] == command and e["status"] == "rolled_back")
    assert "latency" in verdict["detail"]
    assert versions == {"1.0.0"}
