"""Issue 7's deploy over MQTT, end to end: real runtime processes under load, signed commands published on a real
Mosquitto, bundles fetched over HTTP from loopback, the retained state and the events read back."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import jsonschema
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.sign import sign_bundle
from edgekit.bundle.source import PackData, pack_source
from tests.integration.fleet_rig import DIGITS, FleetRecorder, device_args, signed_digits
from tests.integration.rig import Load, wait_for
from tests.runtime.server.process import ServeProcess
from tests.runtime.tamper import re_pinned_with_other_golden_outputs, tampered, unsigned

FLEET = "deploys"


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A key pair, and the digits MLP signed with it as 1.0.0 and 2.0.0."""
    return signed_digits(tmp_path_factory.mktemp("signed"))


def device(name, bundle, public, broker, folder, *extra) -> ServeProcess:
    args = device_args(bundle, public, broker, FLEET, name, folder, "--group", "lab", *extra)
    server = ServeProcess(args, folder / f"{name}-{time.monotonic_ns()}.log")
    server.wait_ready()
    return server


@pytest.fixture
def operator(signed, mosquitto):
    watching = FleetRecorder(mosquitto.port, FLEET, sign_key=signed[0].with_suffix(".key"))
    yield watching
    watching.close()


def test_a_signed_bundle_reaches_three_devices_under_load_without_a_failed_request(
    signed, mosquitto, operator, tmp_path
):
    public, bundles = signed
    names = ("pi-1", "pi-2", "pi-3")
    devices = [device(n, bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "1") for n in names]
    rows = __import__("numpy").load(DIGITS / "mlp_test.npz")["input"]
    loads = [Load(d.url, 1_000_000, threads=1) for d in devices]
    try:
        wait_for(lambda: all(operator.states.get(n, {}).get("status") == "online" for n in names), 20, "online")
        for load in loads:
            load.start(rows)
        wait_for(lambda: all(load.done > 50 for load in loads), 20, "load on every device")
        command = operator.deploy("@lab", bundles["2.0.0"])
        wait_for(lambda: all("committed" in operator.statuses(command, n) for n in names), 60, "three commits")
        wait_for(lambda: all(operator.states[n]["model"]["version"] == "2.0.0" for n in names), 20, "the new state")
        answered = [load.done for load in loads]
        time.sleep(0.5)
        assert all(load.done > before for load, before in zip(loads, answered, strict=True))
    finally:
        for load in loads:
            load._stop.set()
        for load in loads:
            load.stop()
        stop_all(devices)
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "telemetry.schema.json").read_text())
    for event in operator.events:
        jsonschema.validate(event, schema)  # the device's events are what the collector and dashboard read
    for name in names:
        assert operator.statuses(command, name) == [
            "received",
            "fetching",
            "verifying",
            "testing",
            "switching",
            "watching",
            "committed",
        ]


def stop_all(devices) -> None:
    for server in devices:
        server.stop()


def _unsigned(bundle: Path, _key: Path, out: Path) -> Path:
    return unsigned(bundle, out)


def _tampered(bundle: Path, _key: Path, out: Path) -> Path:
    return tampered(bundle, out)  # signed before the model changed


def _failing_self_test(bundle: Path, key: Path, out: Path) -> Path:
    """Golden outputs that are someone else's, signed again by the fleet's key: only the self-test can tell."""
    return sign_bundle(re_pinned_with_other_golden_outputs(bundle, out), key).path


@pytest.mark.parametrize(
    "case",
    [(_unsigned, "sign"), (_tampered, "does not match its sha-256"), (_failing_self_test, "self-test")],
    ids=["unsigned", "tampered", "self-test fails"],
)
def test_a_bundle_that_does_not_verify_is_refused_and_the_old_one_serves_on(
    signed, mosquitto, operator, tmp_path, case
):
    spoil, why = case
    public, bundles = signed
    bad = spoil(bundles["2.0.0"], public.with_suffix(".key"), tmp_path / "bad.edgebundle")
    server = device("pi-9", bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        operator.wait_online("pi-9")
        command = operator.deploy("pi-9", bad)
        wait_for(lambda: "refused" in operator.statuses(command, "pi-9"), 20, "the refusal")
        httpx.post(f"{server.url}/predict", json={"features": [0.0] * 64}, timeout=10).raise_for_status()
    finally:
        server.stop()
    refusal = next(e for e in operator.events if e["id"] == command and e["status"] == "refused")
    assert why in refusal["detail"].lower()
    assert "switching" not in operator.statuses(command, "pi-9")
    assert operator.states["pi-9"]["model"]["version"] == "1.0.0"


def test_a_device_killed_mid_deploy_comes_back_serving_a_verified_model(signed, mosquitto, operator, tmp_path):
    public, bundles = signed
    server = device("pi-5", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "30")
    operator.wait_online("pi-5")
    command = operator.deploy("pi-5", bundles["2.0.0"])
    try:
        wait_for(lambda: "watching" in operator.statuses(command, "pi-5"), 30, "the watch to start")
    finally:
        server.stop(signal.SIGKILL)
    server = device("pi-5", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "30")
    try:
        assert "1.0.0" in server.ready_line  # the one committed before the deploy, verified again on start
        wait_for(lambda: "rolled_back" in operator.statuses(command, "pi-5"), 20, "the rollback event")
    finally:
        server.stop()
    state = json.loads((tmp_path / "pi-5" / "models" / "state.json").read_text())
    assert state["deploy"]["phase"] == "rolled_back"


def slow_digits_model(path: Path, width: int = 512, layers: int = 64) -> Path:
    """Takes the digits MLP's input, passes any self-test of its own, and is a few hundred times slower."""
    rng = np.random.default_rng(0)
    nodes, inits, name, size = [], [], "input", 64
    for i in range(layers):
        weight = (rng.standard_normal((size, width)) / np.sqrt(size)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes += [
            helper.make_node("MatMul", [name, f"w{i}"], [f"m{i}"]),
            helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]),
        ]
        name, size = f"t{i}", width
    nodes.append(helper.make_node("Identity", [name], ["scores"]))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", width])
    graph = helper.make_graph(nodes, "slow-digits", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_bundle_that_passes_its_self_test_but_is_too_slow_under_traffic_is_rolled_back(
    signed, mosquitto, operator, tmp_path
):
    public, bundles = signed
    private = public.with_suffix(".key")
    slow = pack_source(
        str(slow_digits_model(tmp_path / "slow.onnx")),
        tmp_path,
        BundleOptions(name="digits-mlp", version="3.0.0", signing_key=private),
        PackData(calib=DIGITS / "mlp_calib.npz"),
    ).path
    server = device("pi-7", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "3")
    rows = np.load(DIGITS / "mlp_test.npz")["input"]
    load = Load(server.url, 1_000_000, threads=2).start(rows)
    try:
        wait_for(lambda: load.done > 200, 20, "load")
        operator.wait_online("pi-7")
        command = operator.deploy("pi-7", slow)
        wait_for(lambda: {"committed", "rolled_back"} & set(operator.statuses(command, "pi-7")), 60, "a verdict")
        done_before = load.done
        wait_for(lambda: load.done > done_before + 100, 20, "load after the rollback")
    finally:
        load.stop()  # asserts that no request failed
        server.stop()
    assert operator.statuses(command, "pi-7")[-1] == "rolled_back"
    verdict = next(e for e in operator.events if e["id"] == command and e["status"] == "rolled_back")
    assert "latency" in verdict["detail"]
    assert operator.states["pi-7"]["model"]["version"] == "1.0.0"


def erring_digits_model(path: Path) -> Path:
    """The digits input; answers rows whose first pixel is 0 (every golden row) and fails on any other: the
    first pixel indexes a one-row table, so ONNX Runtime refuses the Gather."""
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array((rng.standard_normal((64, 10)) / 8).astype(np.float32), "w")
    table = numpy_helper.from_array(np.zeros((1, 10), np.float32), "table")
    starts, ends, axes = (
        numpy_helper.from_array(np.array([v], np.int64), n) for v, n in ((0, "s"), (1, "e"), (1, "a"))
    )
    squeeze = numpy_helper.from_array(np.array([1], np.int64), "sq")
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["m"]),
        helper.make_node("Slice", ["input", "s", "e", "a"], ["first"]),
        helper.make_node("Cast", ["first"], ["index2d"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["index2d", "sq"], ["index"]),
        helper.make_node("Gather", ["table", "index"], ["bias"], axis=0),
        helper.make_node("Add", ["m", "bias"], ["scores"]),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 10])
    graph = helper.make_graph(nodes, "erring-digits", [x], [y], [weight, table, starts, ends, axes, squeeze])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_bundle_that_passes_its_self_test_but_errors_under_traffic_is_rolled_back(
    signed, mosquitto, operator, tmp_path
):
    public, bundles = signed
    erring = pack_source(
        str(erring_digits_model(tmp_path / "erring.onnx")),
        tmp_path,
        BundleOptions(name="digits-mlp", version="4.0.0", signing_key=public.with_suffix(".key")),
        PackData(calib=DIGITS / "mlp_calib.npz"),  # digits rows: the first pixel is always 0
    ).path
    server = device("pi-8", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "3")
    rows = np.load(DIGITS / "mlp_test.npz")["input"].copy()
    rows[:, 0] = 16.0  # what the old model answers, and the new one fails on
    load = Load(server.url, 1_000_000, threads=2).start(rows)
    try:
        wait_for(lambda: load.done > 200, 20, "load")
        operator.wait_online("pi-8")
        command = operator.deploy("pi-8", erring)
        wait_for(lambda: {"committed", "rolled_back"} & set(operator.statuses(command, "pi-8")), 60, "a verdict")
        failed_at_verdict = len(load.failures)
        done_before = load.done
        wait_for(lambda: load.done > done_before + 100, 20, "load after the rollback")
    finally:
        load.halt()  # not stop(): the new model's failures are the point here
        server.stop()
    assert operator.statuses(command, "pi-8")[-1] == "rolled_back"
    verdict = next(e for e in operator.events if e["id"] == command and e["status"] == "rolled_back")
    assert verdict["detail"].startswith("error rate")
    assert failed_at_verdict > 0  # the new model did fail under traffic
    assert len(load.failures) == failed_at_verdict  # and nothing failed once the old model served again
    assert operator.states["pi-8"]["model"]["version"] == "1.0.0"
