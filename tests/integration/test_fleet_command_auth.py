"""Issue 17's attacks on fleet commands, end to end: real ``edgekit-runtime serve`` processes, a real Mosquitto,
and commands published the way anyone who can reach the broker could publish them.

Each attack ends in a ``refused`` event that says why, nothing of the command runs, the device goes on serving
(an HTTP request to it succeeds) and still takes its owner's next signed command. Commands are signed with the
fleet's ``.key`` (:func:`tests.integration.fleet_rig.signed_digits`), whose ``.pub`` the devices trust.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from edgekit.bundle.signing import generate_keypair, load_private_key
from edgekit_runtime.fleet.agent import READ_ONLY
from tests.brokers import Mosquitto
from tests.integration.fleet_rig import FleetRecorder, device_args, signed_digits
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess

FLEET = "guarded"
GUARDED = "gd-1"
#: a row the digits MLP answers
ROW = {"features": [0.0] * 64}


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A key pair, and the digits MLP signed with it as 1.0.0 and 2.0.0."""
    return signed_digits(tmp_path_factory.mktemp("signed"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """A private key no device trusts."""
    private, _ = generate_keypair(tmp_path_factory.mktemp("stranger") / "stranger")
    return load_private_key(private)


def start(name, bundle, public, broker, folder, *extra: str) -> ServeProcess:
    """Device ``name`` of the fleet, trusting ``public`` (``None``: nothing), its state in ``folder / name``."""
    args = device_args(bundle, public, broker, FLEET, name, folder, "--deploy-watch", "0", *extra)
    server = ServeProcess(args, folder / f"{name}-{time.monotonic_ns()}.log")
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def guarded(signed, tmp_path_factory):
    """A broker of the module's own and one device on it serving 1.0.0: (device, recorder signing as the owner)."""
    public, bundles = signed
    folder = tmp_path_factory.mktemp("guarded")
    broker = Mosquitto(folder / "broker")
    broker.start()
    recorder = FleetRecorder(broker.port, FLEET, sign_key=public.with_suffix(".key"))
    server = None
    try:
        server = start(GUARDED, bundles["1.0.0"], public, broker, folder)
        recorder.wait_online(GUARDED)
        yield server, recorder
    finally:
        if server is not None:
            server.stop()
        recorder.close()
        broker.stop()


@pytest.fixture
def owner(signed, mosquitto):
    """A recorder signing as the fleet's owner, on the test's own broker."""
    recorder = FleetRecorder(mosquitto.port, FLEET, sign_key=signed[0].with_suffix(".key"))
    yield recorder
    recorder.close()


def still_serving(server: ServeProcess, recorder: FleetRecorder, name: str) -> None:
    """The device answers an inference request, and runs its owner's next signed command."""
    httpx.post(f"{server.url}/predict", json=ROW, timeout=10).raise_for_status()
    recorder.wait_status(recorder.command(name, command="status"), "done", name)


def refused(recorder: FleetRecorder, command_id: str, name: str, nth: int = 1) -> str:
    """The detail of the ``nth`` refusal of ``command_id`` on ``name``, once it came."""
    wait_for(lambda: recorder.statuses(command_id, name).count("refused") >= nth, 30, f"refusal {nth} of a command")
    details = [e["detail"] for e in recorder.docs("events", name) if e["id"] == command_id and e["status"] == "refused"]
    return details[nth - 1]


def online_since(recorder: FleetRecorder, name: str, moment: float) -> bool:
    """Whether ``name`` said ``online`` after ``moment`` (so it subscribed to its commands again)."""
    state = recorder.states.get(name, {})
    return state.get("status") == "online" and state.get("since", 0) > moment


def _unsigned(_recorder, _stranger, body):
    doc = {"id": "unsigned-1", **body}
    return doc["id"], json.dumps(doc).encode()


def _unknown_key(recorder, stranger, body):
    return recorder.envelope(GUARDED, key=stranger, **body)


def _expired(recorder, _stranger, body):
    return recorder.envelope(GUARDED, now=time.time() - 3600, **body)


def _from_the_future(recorder, _stranger, body):
    return recorder.envelope(GUARDED, now=time.time() + 3600, **body)


def _for_another_device(recorder, _stranger, body):
    return recorder.envelope("gd-2", **body)  # published on gd-1's topic below


def _for_another_fleet(recorder, _stranger, body):
    return recorder.envelope(GUARDED, fleet="elsewhere", **body)


def _changed_after_signing(recorder, _stranger, body):
    command_id, payload = recorder.envelope(GUARDED, **body)
    envelope = json.loads(payload)
    signed_body = json.loads(envelope["body"])
    envelope["body"] = json.dumps({**signed_body, "source": "http://203.0.113.9/evil.edgebundle"})
    return command_id, json.dumps(envelope).encode()


def _path_on_the_device(recorder, _stranger, body):
    return recorder.envelope(GUARDED, **{**body, "source": "/etc/edgekit/other.edgebundle"})


def _file_url(recorder, _stranger, body):
    return recorder.envelope(GUARDED, **{**body, "source": "file:///etc/shadow"})


ATTACKS = {
    "unsigned": (_unsigned, "commands must be signed (edgekit.signed-command/1)"),
    "unknown key": (_unknown_key, "which this device does not trust"),
    "expired": (_expired, "the command expired: issued 36"),
    "from the future": (_from_the_future, "in the future by this device's clock"),
    "for another device": (_for_another_device, f"signed for {FLEET}/gd-2, not {FLEET}/{GUARDED} where it arrived"),
    "for another fleet": (_for_another_fleet, f"signed for elsewhere/{GUARDED}, not {FLEET}/{GUARDED}"),
    "changed after signing": (_changed_after_signing, "does not match its body: it was changed after signing"),
    "a path on the device": (_path_on_the_device, "a path on the device is never taken from the network"),
    "a file URL": (_file_url, "a path on the device is never taken from the network"),
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_command_the_device_must_not_trust_is_refused_saying_why(signed, guarded, stranger, attack):
    _, bundles = signed
    server, recorder = guarded
    forge, why = attack
    body = recorder.deploy_body(bundles["2.0.0"])  # what the attacker would like the device to run
    command_id, payload = forge(recorder, stranger, body)
    recorder.publish(GUARDED, payload)
    assert why in refused(recorder, command_id, GUARDED)
    assert "received" not in recorder.statuses(command_id, GUARDED)  # nothing of it ran
    still_serving(server, recorder, GUARDED)
    assert recorder.version(GUARDED) == "1.0.0"


def test_a_replayed_command_runs_once_even_after_a_restart(signed, mosquitto, owner, tmp_path):
    public, bundles = signed
    server = start("rp-1", bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        owner.wait_online("rp-1")
        command_id, payload = owner.envelope("rp-1", **owner.deploy_body(bundles["2.0.0"]))
        owner.publish("rp-1", payload)
        owner.wait_status(command_id, "committed", "rp-1")
        owner.publish("rp-1", payload)  # the same envelope, as someone who recorded it sends it
        assert "a replayed or retained command runs once" in refused(owner, command_id, "rp-1")
        still_serving(server, owner, "rp-1")
    finally:
        server.stop()
    restarted = time.time()
    server = start("rp-1", bundles["1.0.0"], public, mosquitto, tmp_path)  # the nonces taken are on disk
    try:
        assert "2.0.0" in server.ready_line
        wait_for(lambda: online_since(owner, "rp-1", restarted), 20, "rp-1 online again")
        owner.publish("rp-1", payload)
        assert "its nonce is known" in refused(owner, command_id, "rp-1", nth=2)
        still_serving(server, owner, "rp-1")
    finally:
        server.stop()
    assert owner.statuses(command_id, "rp-1").count("committed") == 1
    assert owner.statuses(command_id, "rp-1").count("received") == 1


def test_a_retained_command_on_all_runs_once_across_a_restart(signed, mosquitto, owner, tmp_path):
    public, bundles = signed
    server = start("rt-1", bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        owner.wait_online("rt-1")
        command_id = owner.command("@all", retain=True, **owner.deploy_body(bundles["2.0.0"]))
        owner.wait_status(command_id, "committed", "rt-1")
    finally:
        server.stop()
    # the broker delivers the retained command again to the restarted device's new subscription
    server = start("rt-1", bundles["1.0.0"], public, mosquitto, tmp_path)
    try:
        assert "a replayed or retained command runs once" in refused(owner, command_id, "rt-1")
        still_serving(server, owner, "rt-1")
    finally:
        server.stop()
    assert owner.statuses(command_id, "rt-1").count("committed") == 1
    assert owner.statuses(command_id, "rt-1").count("received") == 1
    assert owner.version("rt-1") == "2.0.0"


def test_a_device_without_trusted_keys_refuses_every_command_and_keeps_sending_telemetry(signed, mosquitto, tmp_path):
    public, bundles = signed
    recorder = FleetRecorder(
        mosquitto.port, FLEET, sign_key=public.with_suffix(".key"), kinds=("cmd", "events", "state", "telemetry")
    )
    server = start("ro-1", bundles["1.0.0"], None, mosquitto, tmp_path, "--telemetry-interval", "0.5")
    try:
        recorder.wait_online("ro-1")
        assert recorder.states["ro-1"]["commands"] == "refused: no --trust"
        wait_for(lambda: f"note: {READ_ONLY}" in server.stderr(), 10, "the read-only note at the start")
        signed_deploy = recorder.deploy("ro-1", bundles["2.0.0"])
        assert refused(recorder, signed_deploy, "ro-1") == READ_ONLY
        unsigned = {"id": "ro-unsigned", "command": "rollback"}
        recorder.publish("ro-1", unsigned)
        assert refused(recorder, "ro-unsigned", "ro-1") == READ_ONLY
        httpx.post(f"{server.url}/predict", json=ROW, timeout=10).raise_for_status()
        windows = len(recorder.docs("telemetry", "ro-1"))
        wait_for(lambda: len(recorder.docs("telemetry", "ro-1")) > windows, 20, "telemetry after the refusals")
        status = recorder.command("ro-1", command="status")  # it answers, and still runs nothing
        assert refused(recorder, status, "ro-1") == READ_ONLY
    finally:
        server.stop()
        recorder.close()
    assert "received" not in recorder.statuses(signed_deploy, "ro-1")
    assert recorder.version("ro-1") == "1.0.0"


def test_a_downgrade_is_refused_unless_the_signed_command_allows_it(signed, mosquitto, owner, tmp_path):
    public, bundles = signed
    server = start("dg-1", bundles["2.0.0"], public, mosquitto, tmp_path)
    try:
        owner.wait_online("dg-1")
        plain = owner.deploy("dg-1", bundles["1.0.0"])
        detail = owner.wait_status(plain, "refused", "dg-1")["detail"]
        assert "digits-mlp 1.0.0 is older than digits-mlp 2.0.0 serving now: refusing a downgrade" in detail
        assert "switching" not in owner.statuses(plain, "dg-1")
        still_serving(server, owner, "dg-1")
        assert owner.version("dg-1") == "2.0.0"

        allowed = owner.deploy("dg-1", bundles["1.0.0"], allow_downgrade=True)
        owner.wait_status(allowed, "committed", "dg-1")
        wait_for(lambda: owner.version("dg-1") == "1.0.0", 20, "1.0.0 in the state")
        still_serving(server, owner, "dg-1")
    finally:
        server.stop()
