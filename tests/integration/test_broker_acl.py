"""One identity per device, on a real Mosquitto run with what ``edgekit fleet provision`` wrote (issue 17).

The broker reads the generated ``mosquitto.conf`` (its listener, ``allow_anonymous false``, the password file
and the ACL). Devices log in with their own account: the runtime's publisher, or a plain paho client set up
with the runtime's ``log_in``; the collector and the operator are edgekit's own.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

import pytest

from edgekit.fleet.broker_accounts import Device
from edgekit.fleet.link import FleetLink
from edgekit.fleet.provision import Provisioned, ProvisionRequest, provision
from edgekit.telemetry.collector import Collector, CollectorSettings
from edgekit.telemetry.store import open_store
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.telemetry.mqtt import Topics
from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.publisher import Publisher
from edgekit_runtime.telemetry.recorder import Identity, Recorder
from tests.brokers import Mosquitto, free_port
from tests.edgekit.telemetry.sample import batch, event, state, window
from tests.integration.broker_rig import Account, collector_settings, secret
from tests.integration.rig import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


FLEET = "lab"
DEVICES = (Device("pi-1", ("lobby",)), Device("pi-2"))
_IDS = itertools.count()


@pytest.fixture
def fleet(tmp_path) -> Iterator[tuple[Mosquitto, Provisioned]]:
    """A broker configured by nothing but the provisioned folder: pi-1 (group lobby), pi-2, operator, collector."""
    port = free_port()
    request = ProvisionRequest(fleet=FLEET, devices=DEVICES, port=port, bind="127.0.0.1")
    provisioned = provision(tmp_path / "provisioned", request)
    broker = Mosquitto(tmp_path / "broker", port, include=provisioned.folder)
    broker.start()
    yield broker, provisioned
    broker.stop()


@pytest.fixture
def login(fleet) -> Iterator[Any]:
    """``login(name)``: a connected :class:`Account` with that account's password file; closed after the test."""
    broker, provisioned = fleet
    opened: list[Account] = []

    def connect(name: str, *, will: tuple[str, dict[str, Any]] | None = None) -> Account:
        settings = MqttSettings(broker.url, username=name, password_file=provisioned.password_file(name))
        account = Account(broker, settings, will=will)
        opened.append(account)
        assert account.connect() == "Success", f"{name} was refused"
        return account

    yield connect
    for account in opened:
        account.close()


def test_anonymous_clients_and_wrong_passwords_are_refused(fleet):
    broker, provisioned = fleet
    anonymous = Account(broker, None)
    wrong = Account(broker, MqttSettings(broker.url, username="pi-1", password_file=provisioned.password_file("pi-2")))
    stranger = Account(
        broker, MqttSettings(broker.url, username="pi-9", password_file=provisioned.password_file("pi-2"))
    )
    try:
        for account in (anonymous, wrong, stranger):
            assert account.connect().is_failure
            assert str(account.connack) in ("Not authorized", "Bad user name or password")
    finally:
        for account in (anonymous, wrong, stranger):
            account.close()


def test_a_device_s_own_telemetry_and_state_are_stored(fleet, tmp_path):
    broker, provisioned = fleet
    device = MqttSettings(broker.url, username="pi-1", password_file=provisioned.password_file("pi-1"))
    settings = collector_settings(broker, provisioned, share="collectors")  # a shared subscription passes the ACL
    with open_store(tmp_path / "telemetry.db") as store, Collector(settings, store) as collector:
        assert collector.wait_ready(10)
        with Outbox(tmp_path / "outbox.db") as outbox:
            recorder = Recorder(outbox, Identity(FLEET, "pi-1", {"name": "m"}, "0"))
            for _ in range(3):
                recorder.record(0.001)
                recorder.close_window()
            publisher = Publisher(outbox, device, Topics(FLEET, "pi-1"), state={"model": {"name": "m"}})
            publisher.start()
            try:
                wait_for(lambda: collector.counts.stored == 3, 20, "3 windows stored")
            finally:
                publisher.stop()
            assert outbox.count == 0
        wait_for(lambda: [s.status for s in store.summary()] == ["offline"], 10, "the offline state")
        assert publisher.stats.last_error == ""
        assert collector.counts.rejected == 0
        (summary,) = store.summary()
    assert (summary.device, summary.windows, summary.status) == ("pi-1", 3, "offline")


def test_a_device_cannot_publish_for_another(fleet, login, tmp_path):
    broker, provisioned = fleet
    with (
        open_store(tmp_path / "telemetry.db") as store,
        Collector(collector_settings(broker, provisioned), store) as collector,
    ):
        assert collector.wait_ready(10)
        pi1 = login("pi-1")
        for kind, doc in (
            ("telemetry", window(999, device="pi-2")),
            ("state", state("offline", device="pi-2")),
            ("events", event("committed", device="pi-2")),
        ):
            assert pi1.publish(f"edgekit/{FLEET}/pi-2/{kind}", doc) == "Not authorized", kind
        # nor with its Last Will: the broker checks the will's topic when it sends it; pi-2's own will arrives
        login("pi-1", will=(f"edgekit/{FLEET}/pi-2/state", state("hijacked", device="pi-2"))).drop()
        login("pi-2", will=(f"edgekit/{FLEET}/pi-2/state", state("offline", device="pi-2"))).drop()
        wait_for(lambda: collector.counts.states == 1, 10, "pi-2's own will")
        pi2 = login("pi-2")
        assert pi2.publish(f"edgekit/{FLEET}/pi-2/telemetry", window(1, device="pi-2")) == "Success"
        wait_for(lambda: collector.counts.stored == 1, 10, "pi-2's own window")
        time.sleep(0.5)  # what the broker let through would have arrived before the window sent after it
        counts = collector.counts
        states = store.summary()
    assert (counts.received, counts.rejected, counts.states, counts.events) == (2, 0, 1, 0)
    assert [(s.device, s.windows, s.status) for s in states] == [("pi-2", 1, "offline")]


def test_a_spoof_from_a_device_s_own_topic_is_rejected_and_counted(fleet, login, tmp_path, caplog):
    broker, provisioned = fleet
    with (
        open_store(tmp_path / "telemetry.db") as store,
        Collector(collector_settings(broker, provisioned), store) as collector,
    ):
        assert collector.wait_ready(10)
        pi1 = login("pi-1")
        own = f"edgekit/{FLEET}/pi-1"
        for topic, doc in (
            (f"{own}/telemetry", window(1000, device="pi-2")),  # a future seq in pi-2's name
            (f"{own}/telemetry", batch([window(1001, device="pi-2")], device="pi-1")),
            (f"{own}/telemetry", window(1002, device="pi-1", fleet="other")),
            (f"{own}/state", state("offline", device="pi-2")),
            (f"{own}/events", event("committed", device="pi-2")),
        ):
            assert pi1.publish(topic, doc) == "Success"  # the broker lets a device use its own topics
        wait_for(lambda: collector.counts.rejected == 5, 10, "5 spoofs rejected")
        pi2 = login("pi-2")
        for seq in (1, 2):
            pi2.publish(f"edgekit/{FLEET}/pi-2/telemetry", window(seq, device="pi-2"))
        wait_for(lambda: collector.counts.stored == 2, 10, "pi-2's real windows")
        counts = collector.counts
        summary = {s.device: (s.windows, s.status) for s in store.summary()}
    assert (counts.rejected, counts.spoofed, counts.duplicates, counts.states, counts.events) == (5, 5, 0, 0, 0)
    assert summary == {"pi-2": (2, None)}  # nothing of pi-1's spoofs, and pi-2's windows are not "duplicates"
    assert "edgekit/lab/pi-1/telemetry: device 'pi-2' in the payload does not match the topic's" in caplog.text


def test_commands_reach_only_the_devices_they_are_for(fleet, login):
    broker, provisioned = fleet
    pi1, pi2 = login("pi-1"), login("pi-2")
    base = f"edgekit/{FLEET}"
    for device in (pi1, pi2):
        device.subscribe(f"{base}/pi-1/cmd", f"{base}/pi-2/cmd", f"{base}/@all/cmd", f"{base}/@lobby/cmd", "edgekit/#")
    operator = CollectorSettings(
        broker=broker.url, username="operator", password=secret(provisioned, "operator"), fleet=FLEET
    )
    with FleetLink(operator) as link:
        for target in ("pi-2", "@all", "@lobby"):  # the topics link.command() uses; the ACL never reads payloads
            link.publish([(f"{base}/{target}/cmd", b'{"id": "x", "command": "status"}')], what=f"a command to {target}")
        link.publish([(f"{base}/@bundles/{'ab' * 32}/manifest", b"{}")], retain=True)
        expected = {
            pi1: {f"{base}/@all/cmd", f"{base}/@lobby/cmd", f"{base}/@bundles/{'ab' * 32}/manifest"},
            pi2: {f"{base}/pi-2/cmd", f"{base}/@all/cmd", f"{base}/@bundles/{'ab' * 32}/manifest"},
        }
        for device, topics in expected.items():
            wait_for(lambda d=device, t=topics: d.topics() >= t, 10, f"commands to {sorted(topics)}")
        link.publish([(f"{base}/@bundles/{'ab' * 32}/manifest", b"")], retain=True)  # clear the retained copy
        time.sleep(0.5)
    assert pi1.topics() == expected[pi1]  # not pi-2's command, whatever it subscribed to
    assert pi2.topics() == expected[pi2]  # not the lobby's
    late = login("pi-2")  # a device that subscribes to the bundles later gets the retained chunks
    chunk = f"{base}/@bundles/{'cd' * 32}/0"
    with FleetLink(operator) as link:
        link.publish([(chunk, b"chunk")], retain=True)
        late.subscribe(f"{base}/@bundles/#")
        wait_for(lambda: chunk in late.topics(), 10, "the retained chunk")
        link.publish([(chunk, b"")], retain=True)


def test_only_the_operator_and_the_collector_send_commands_and_the_collector_nothing_else(login):
    base = f"edgekit/{FLEET}"
    pi1, collector = login("pi-1"), login("collector")
    for target in ("pi-2", "pi-1", "@all", "@lobby"):
        assert pi1.publish(f"{base}/{target}/cmd", {"id": "x", "command": "rollback"}) == "Not authorized"
    assert pi1.publish(f"{base}/@bundles/{'ab' * 32}/0", b"chunk", retain=True) == "Not authorized"
    for topic in (f"{base}/collector/telemetry", f"{base}/collector/state", f"{base}/x/events", f"{base}/@bundles/x"):
        assert collector.publish(topic, window(1, device="collector")) == "Not authorized", topic
    # allowed (no device listens in this test): the device takes it only signed by the fleet's key
    assert collector.publish(f"{base}/pi-1/cmd", {"id": "x", "command": "resend"}) != "Not authorized"
    operator = login("operator")
    assert operator.publish(f"{base}/operator/telemetry", window(1, device="operator")) == "Not authorized"
    assert operator.publish(f"{base}/pi-1/state", state("offline", device="pi-1")) == "Not authorized"


def test_devices_added_later_rotated_and_removed_on_a_running_broker(fleet, login, tmp_path):
    broker, provisioned = fleet
    old = {name: secret(provisioned, name) for name in ("pi-1", "pi-2")}
    (tmp_path / "pi-2.old").write_text(old["pi-2"])
    pi1, pi2 = login("pi-1"), login("pi-2")
    again = provision(provisioned.folder, ProvisionRequest(fleet=FLEET, devices=(Device("pi-3"),), rotate=("pi-2",)))
    assert (again.created, again.rotated) == (("pi-3",), ("pi-2",))
    assert secret(again, "pi-1") == old["pi-1"]
    broker.reload()

    def logs_in(name: str, password_file: Path) -> bool:
        account = Account(broker, MqttSettings(broker.url, username=name, password_file=password_file))
        try:
            return not account.connect().is_failure
        finally:
            account.close()

    wait_for(lambda: logs_in("pi-3", again.password_file("pi-3")), 10, "pi-3 let in after the reload")
    wait_for(pi2.gone.is_set, 10, "pi-2's old password cut off at the reload")
    assert not pi1.gone.is_set()  # the others are not even reconnected
    assert not pi1.publish(f"edgekit/{FLEET}/pi-1/telemetry", window(1, device="pi-1")).is_failure
    assert logs_in("pi-1", again.password_file("pi-1"))
    assert logs_in("pi-2", again.password_file("pi-2"))
    assert not logs_in("pi-2", tmp_path / "pi-2.old")
    pi3 = login("pi-3")
    assert not pi3.publish(f"edgekit/{FLEET}/pi-3/telemetry", window(1, device="pi-3")).is_failure  # no one reads
    assert pi3.publish(f"edgekit/{FLEET}/pi-1/telemetry", window(1, device="pi-1")) == "Not authorized"
    (tmp_path / "pi-3.password").write_text(secret(again, "pi-3"))
    gone = provision(provisioned.folder, ProvisionRequest(fleet=FLEET, remove=("pi-3",)))  # lost, or stolen
    assert gone.removed == ("pi-3",)
    broker.reload()
    wait_for(pi3.gone.is_set, 10, "the removed pi-3 cut off at the reload")
    assert not logs_in("pi-3", tmp_path / "pi-3.password")
    assert not pi1.gone.is_set()
