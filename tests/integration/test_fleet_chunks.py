"""Issue 7's bundle over MQTT alone: retained chunks with a hash each, fetched by a real runtime process from a
real Mosquitto, resumed after the device or the broker went away, refused when a chunk is damaged or the signed
command's size is not the bundle's."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgekit_runtime.fleet.chunks import bundle_topic, manifest_for, mqtt_source
from tests.integration.fleet_rig import FleetRecorder
from tests.integration.rig import wait_for
from tests.integration.test_fleet_deploy import FLEET, device, signed  # noqa: F401  (signed: a fixture)

EDGEKIT = str(Path(sys.executable).parent / "edgekit")
CHUNK = 4096


def publish_retained(broker, messages: dict[str, bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for info in [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages.items()]:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def retained_under(broker, topic_filter: str, seconds: float = 1.0) -> dict[str, bytes]:
    """The retained messages the broker holds under ``topic_filter``."""
    got: dict[str, bytes] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = lambda _c, _u, m: got.__setitem__(m.topic, bytes(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    time.sleep(seconds)
    client.loop_stop()
    client.disconnect()
    return got


def split(bundle: Path) -> tuple[str, dict[str, bytes], list[str]]:
    """The bundle's hash, its messages by topic, and its chunk topics in order."""
    data = bundle.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    manifest, pieces = manifest_for(data, CHUNK)
    base = bundle_topic(FLEET, sha)
    chunk_topics = [f"{base}/{i}" for i in range(len(pieces))]
    return sha, {f"{base}/manifest": manifest, **dict(zip(chunk_topics, pieces, strict=True))}, chunk_topics


def deploy_of(bundle: Path, **extra) -> dict:
    """A deploy command's fields for ``bundle`` over MQTT (its chunks published by the test, as it likes)."""
    data = bundle.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return {"command": "deploy", "source": mqtt_source(sha), "sha256": sha, "size": len(data), **extra}


def fetching_details(operator, command_id: str, name: str) -> list[str]:
    return [
        e["detail"]
        for e in operator.events
        if e["id"] == command_id and e["device"] == name and e["status"] == "fetching"
    ]


def partial_chunks(folder: Path, sha: str) -> int:
    partial = folder / "models" / f".partial-{sha}"
    return len([p for p in partial.iterdir() if p.name.isdigit()]) if partial.is_dir() else 0


def test_the_cli_sends_the_bundle_over_the_broker_and_clears_it_afterwards(signed, mosquitto, operator, tmp_path):  # noqa: F811
    public, bundles = signed
    server = device("ch-1", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "1")
    try:
        operator.wait_online("ch-1")
        command = [EDGEKIT, "fleet", "deploy", str(bundles["2.0.0"]), "--broker", mosquitto.url, "--fleet", FLEET]
        command += ["--sign-key", str(public.with_suffix(".key"))]
        command += ["--devices", "ch-1", "--chunk-kib", "8", "--json", "--timeout", "60"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        sha = hashlib.sha256(bundles["2.0.0"].read_bytes()).hexdigest()
        assert result["source"] == mqtt_source(sha)
        wait_for(lambda: operator.states["ch-1"]["model"]["version"] == "2.0.0", 20, "the new state")
    finally:
        server.stop()
    deploy_id = next(e["id"] for e in operator.events if e["device"] == "ch-1" and e["status"] == "committed")
    chunks = -(-bundles["2.0.0"].stat().st_size // 8192)
    assert f"over MQTT: {chunks} chunks of 8 KiB, 0 already on the device" in fetching_details(
        operator, deploy_id, "ch-1"
    )
    assert retained_under(mosquitto, f"edgekit/{FLEET}/@bundles/#") == {}  # the broker keeps no bundle
    assert not list((tmp_path / "ch-1" / "models").glob(".partial-*"))


def test_a_device_killed_mid_fetch_resumes_with_the_chunks_it_had(signed, mosquitto, operator, tmp_path):  # noqa: F811
    public, bundles = signed
    sha, messages, chunk_topics = split(bundles["2.0.0"])
    half = len(chunk_topics) // 2
    withheld = {topic: messages.pop(topic) for topic in chunk_topics[half:]}
    publish_retained(mosquitto, messages)  # the manifest and the first half
    server = device("ch-2", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "1")
    try:
        operator.wait_online("ch-2")
        first = operator.command("ch-2", **deploy_of(bundles["2.0.0"]))
        wait_for(lambda: partial_chunks(tmp_path / "ch-2", sha) == half, 20, "half the chunks on the device")
    finally:
        server.stop(signal.SIGKILL)
    publish_retained(mosquitto, withheld)
    server = device("ch-2", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "1")
    try:
        assert "1.0.0" in server.ready_line
        wait_for(lambda: "failed" in operator.statuses(first, "ch-2"), 20, "the cut-off deploy ended")
        second = operator.command("ch-2", **deploy_of(bundles["2.0.0"]))
        wait_for(lambda: "committed" in operator.statuses(second, "ch-2"), 60, "the resumed deploy")
    finally:
        server.stop()
    want = f"over MQTT: {len(chunk_topics)} chunks of 4 KiB, {half} already on the device"
    assert want in fetching_details(operator, second, "ch-2")
    assert operator.states["ch-2"]["model"]["version"] == "2.0.0"


def test_a_fetch_outlives_a_broker_restart(signed, mosquitto, operator, tmp_path):  # noqa: F811
    public, bundles = signed
    sha, messages, chunk_topics = split(bundles["2.0.0"])
    third = len(chunk_topics) // 3
    withheld = {topic: messages.pop(topic) for topic in chunk_topics[third:]}
    publish_retained(mosquitto, messages)
    server = device("ch-3", bundles["1.0.0"], public, mosquitto, tmp_path, "--deploy-watch", "1")
    try:
        operator.wait_online("ch-3")
        command = operator.command("ch-3", **deploy_of(bundles["2.0.0"]))
        wait_for(lambda: partial_chunks(tmp_path / "ch-3", sha) == third, 20, "a third of the chunks")
        saved = time.time()
        mosquitto.wait_saved(saved)
        mosquitto.stop()  # SIGTERM: the broker saves its retained messages
        time.sleep(1.0)
        mosquitto.start()
        after = FleetRecorder(mosquitto.port, FLEET)  # the first one's subscriptions went with the broker's restart
        try:
            after.wait_online("ch-3")
            publish_retained(mosquitto, withheld)
            wait_for(lambda: "committed" in after.statuses(command, "ch-3"), 60, "the same deploy, finished")
        finally:
            after.close()
    finally:
        server.stop()
    assert "failed" not in operator.statuses(command, "ch-3") + after.statuses(command, "ch-3")


def test_a_damaged_chunk_fails_the_deploy_naming_it(signed, mosquitto, operator, tmp_path):  # noqa: F811
    public, bundles = signed
    sha, messages, chunk_topics = split(bundles["2.0.0"])
    messages[chunk_topics[3]] = b"\0" * CHUNK
    publish_retained(mosquitto, messages)
    server = device("ch-4", bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        operator.wait_online("ch-4")
        command = operator.command("ch-4", **deploy_of(bundles["2.0.0"]))
        wait_for(lambda: "failed" in operator.statuses(command, "ch-4"), 30, "the failure")
    finally:
        server.stop()
    failure = next(e for e in operator.events if e["id"] == command and e["status"] == "failed")
    assert f"chunk 3 of bundle {sha[:12]} does not match its hash" in failure["detail"]
    assert operator.states["ch-4"]["model"]["version"] == "1.0.0"


@pytest.fixture
def operator(signed, mosquitto):  # noqa: F811
    watching = FleetRecorder(mosquitto.port, FLEET, sign_key=signed[0].with_suffix(".key"))
    yield watching
    watching.close()


def test_a_manifest_that_is_not_the_signed_size_is_refused_before_any_chunk_is_fetched(
    signed,  # noqa: F811
    mosquitto,
    operator,
    tmp_path,
):
    public, bundles = signed
    sha, messages, _ = split(bundles["2.0.0"])
    publish_retained(mosquitto, messages)
    size = bundles["2.0.0"].stat().st_size
    server = device("ch-5", bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        operator.wait_online("ch-5")
        command = operator.command("ch-5", **deploy_of(bundles["2.0.0"], size=size - 1))
        failure = operator.wait_status(command, "failed", "ch-5")
    finally:
        server.stop()
    assert f"bundle {sha[:12]}'s chunk manifest says {size} bytes, the signed command {size - 1}" in failure["detail"]
    assert partial_chunks(tmp_path / "ch-5", sha) == 0  # nothing fetched past what was signed
    assert operator.states["ch-5"]["model"]["version"] == "1.0.0"
