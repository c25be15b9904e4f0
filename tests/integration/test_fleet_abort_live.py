"""``edgekit fleet deploy --abort-if`` judged on live telemetry: three runtime processes under constant load, each
sending a window a second to a Mosquitto of the module's own, a real collector process writing SQLite, and the
operator's command as a process reading that database, serving the bundle over HTTP (``--serve``) and signing its
commands (``--sign-key``).

The devices run with ``--deploy-watch 0``: their own health watch lets any bundle that passes its self-test
through, so what stops the slow bundle is the operator's rule alone. Each device starts from its command line's
1.0.0 with an empty model store: its first deploy keeps that bundle as ``previous``, which the canary's rollback
goes back to.
The load is paced (a request every 20 ms per device): back-to-back load from three clients on a machine of two
cores put the digits MLP's own window p99 anywhere up to 250 ms; paced, it stays at 100 ms or less (mostly 5 to
25 ms, with spikes while another device loads a bundle).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from tests.brokers import Mosquitto
from tests.integration.fleet_rig import DIGITS, FleetRecorder, device_args, signed_digits
from tests.integration.rig import Collector, Load, wait_for
from tests.runtime.server.process import ServeProcess

FLEET = "abort"
NAMES = ("ab-1", "ab-2", "ab-3")
CANARY, REST = "ab-1", ("ab-2", "ab-3")
EDGEKIT = str(Path(sys.executable).parent / "edgekit")
#: one call of the slow bundle alone takes about 450 ms on the machine this was written on: four times the rule's
#: threshold, for faster machines; the digits MLP's window p99 under the paced load stays at or under it
SLOW_RULE = "p99_ms>100"
GENEROUS_RULE = "p99_ms>1000"


def looping_digits_model(path: Path, turns: int = 32_768, width: int = 512) -> Path:
    """Takes the digits MLP's input and turns it ``turns`` times through one MatMul and Tanh (an ONNX Loop).

    Small on disk (one weight) and as slow as ``turns`` says; the weights shrink the state, so the outputs are
    the same on every run and the golden self-test passes.
    """
    rng = np.random.default_rng(0)
    w_in = (rng.standard_normal((64, width)) / 8).astype(np.float32)
    w = (0.5 * rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["x_in", "w"], ["m"]),
            helper.make_node("Tanh", ["m"], ["x_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "turn",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, ["batch", width]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, ["batch", width]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w_in"], ["h"]),
            helper.make_node("Loop", ["turns", "keep", "h"], ["scores"], body=body),
        ],
        "looping-digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", width])],
        [
            numpy_helper.from_array(w_in, "w_in"),
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array(turns, dtype=np.int64), "turns"),
            numpy_helper.from_array(np.ones((), dtype=np.bool_), "keep"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A key pair; the digits MLP signed as 1.0.0 and 2.0.0, and a signed 3.0.0 that is thousands of times slower."""
    folder = tmp_path_factory.mktemp("signed")
    public, made = signed_digits(folder)
    made["slow"] = pack_source(
        str(looping_digits_model(folder / "slow.onnx")),
        folder,
        BundleOptions(name="digits-mlp", version="3.0.0", signing_key=public.with_suffix(".key")),
        PackData(calib=DIGITS / "mlp_calib.npz"),
    ).path
    return public, made


@pytest.fixture(scope="module")
def fleet(bundles, tmp_path_factory):
    """A broker, a collector into ``telemetry.db``, three devices under load, a recorder: (broker, db, recorder).

    The devices trust the key pair's ``.pub``; the operator's command signs with its ``.key``.
    """
    public, made = bundles
    folder = tmp_path_factory.mktemp("abort")
    broker = Mosquitto(folder / "broker")
    broker.start()
    recorder = FleetRecorder(broker.port, FLEET)
    collector = Collector(broker, folder / "telemetry.db", folder / "collector.log")
    devices, loads = [], []
    try:
        for name in NAMES:
            args = device_args(
                made["1.0.0"], public, broker, FLEET, name, folder, "--deploy-watch", "0", "--telemetry-interval", "1"
            )
            devices.append(ServeProcess(args, folder / f"{name}.log"))
        for device in devices:
            device.wait_ready()
        collector.subscribed(broker)
        recorder.wait_online(*NAMES)
        rows = np.load(DIGITS / "mlp_test.npz")["input"]
        loads = [Load(device.url, 10_000_000, threads=1, pause=0.02).start(rows) for device in devices]
        wait_for(lambda: all(load.done > 20 for load in loads), 20, "load on every device")
        yield broker, collector.db, recorder
        for load in loads:
            load.stop()  # no request failed, through every switch and rollback
    finally:
        for load in loads:
            load._stop.set()
        for device in devices:
            device.stop()
        collector.stop()
        recorder.close()
        broker.stop()


def edgekit_deploy(broker, db, bundle, rule, key) -> tuple[subprocess.CompletedProcess, dict | None]:
    command = [
        *(EDGEKIT, "fleet", "deploy", str(bundle), "--broker", broker.url, "--fleet", FLEET, "--json"),
        *("--sign-key", str(key), "--serve", "127.0.0.1:0"),
        *("--devices", ",".join(NAMES), "--canary", "30%", "--timeout", "30"),
        *("--abort-if", rule, "--db", str(db), "--bake", "3"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    try:
        return done, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done, None


def p99s_since(db: Path, device: str, since: float) -> list[float]:
    """The p99 of each window of ``device`` the collector stored that ended at ``since`` or later."""
    with sqlite3.connect(db, timeout=5) as con:
        rows = con.execute(
            "SELECT p99 FROM telemetry WHERE fleet = ? AND device = ? AND window_end >= ? AND p99 IS NOT NULL",
            (FLEET, device, since),
        ).fetchall()
    return [float(p99) for (p99,) in rows]


def committed_at(result: dict, device: str) -> float:
    step = next(s for s in result["steps"] if s["device"] == device and s["stage"] == "canary")
    assert step["status"] == "committed", step
    return float(step["reported"])


def test_a_good_bundle_under_a_generous_rule_completes(bundles, fleet):
    public, made = bundles
    broker, db, recorder = fleet
    done, result = edgekit_deploy(broker, db, made["2.0.0"], GENEROUS_RULE, public.with_suffix(".key"))
    assert done.returncode == 0, done.stderr
    assert result is not None
    assert result["outcome"] == "completed"
    assert (result["canary"], result["rest"]) == ([CANARY], list(REST))
    assert {s["device"]: s["status"] for s in result["steps"]} == dict.fromkeys(NAMES, "committed")
    judged = p99s_since(db, CANARY, committed_at(result, CANARY))
    assert judged, "the rule was judged on no window: the collector stored none of the canary's since its commit"
    assert max(judged) <= 1000
    wait_for(lambda: all(recorder.version(n) == "2.0.0" for n in NAMES), 20, "2.0.0 in every state")


def test_a_slow_bundle_the_device_commits_is_stopped_by_the_rule_on_live_telemetry(bundles, fleet):
    public, made = bundles
    broker, db, recorder = fleet
    before = {name: recorder.version(name) for name in NAMES}
    started = time.time()
    done, result = edgekit_deploy(broker, db, made["slow"], SLOW_RULE, public.with_suffix(".key"))
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "aborted" in lines[0]
    assert result is not None
    assert result["outcome"] == "aborted"
    measured = re.fullmatch(rf"--abort-if on canary {CANARY}: p99_ms>100 \(p99_ms was ([0-9.]+)\)", result["reason"])
    assert measured is not None, result["reason"]
    assert float(measured[1]) > 100
    assert result["reason"] in lines[0]

    prefix = result["id"]
    canary_deploy = [e["status"] for e in recorder.docs("events", CANARY, f"{prefix}-{CANARY}")]
    assert "committed" in canary_deploy  # the device's own watch let it through
    assert "rolled_back" not in canary_deploy
    assert float(measured[1]) in p99s_since(db, CANARY, committed_at(result, CANARY))  # what the collector stored
    rollback = [e["status"] for e in recorder.docs("events", CANARY, f"{prefix}-rb-{CANARY}")]
    assert rollback[-1] == "rolled_back", rollback
    for device in REST:
        assert not recorder.docs("cmd", device, prefix), f"{device} was sent a command of the aborted rollout"
        assert not recorder.docs("events", device, prefix)
    wait_for(lambda: recorder.version(CANARY) == before[CANARY], 20, "the canary's state back on its version")
    assert {name: recorder.version(name) for name in REST} == {name: before[name] for name in REST}
    assert time.time() - started < 45
