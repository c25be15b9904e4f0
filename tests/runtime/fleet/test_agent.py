"""The agent against a stand-in publisher: routing, signed commands and refusals, at-least-once delivery, a bug."""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit_runtime.fleet.agent import QUEUE, READ_ONLY, Agent, command_topics
from edgekit_runtime.fleet.chunks import ChunkFetcher
from edgekit_runtime.fleet.signed_command import seal
from edgekit_runtime.telemetry.mqtt import Topics

TOPICS = Topics("lab", "pi-1")


class Publisher:
    """What the agent uses of the publisher: subscriptions, side messages, the retained state."""

    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.sent: list[tuple[str, dict]] = []
        self.state: dict = {}
        self.on_message = None

    def subscribe(self, topic: str) -> None:
        self.subscribed.append(topic)

    def unsubscribe(self, topic: str) -> None:
        self.subscribed.remove(topic)

    def send(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, orjson.loads(payload)))

    def update_state(self, **fields) -> None:
        self.state.update(fields)


class Serving:
    name, version, sha256 = "digits", "1.0.0", "0" * 64


class Deployer:
    def __init__(self) -> None:
        self.serving = Serving()
        self.emit = None
        self.fetch = None
        self.rollbacks: list[str] = []
        self.deploys: list = []

    def rollback(self, command_id: str) -> None:
        self.rollbacks.append(command_id)

    def deploy(self, command) -> None:
        self.deploys.append(command)


def agent_with(tmp_path=None, gate=None):
    publisher, deployer = Publisher(), Deployer()
    chunks = ChunkFetcher(publisher, "lab", tmp_path) if tmp_path is not None else None
    return Agent(publisher, TOPICS, deployer, ["shop"], chunks, gate=gate), publisher, deployer


def statuses(publisher: Publisher) -> list[tuple[str, str]]:
    return [(doc["id"], doc["status"]) for _, doc in publisher.sent]


def test_the_agent_subscribes_to_its_own_the_fleets_and_its_groups_topics():
    _, publisher, _ = agent_with()
    assert publisher.subscribed == command_topics(TOPICS, ["shop"])
    assert publisher.subscribed == ["edgekit/lab/pi-1/cmd", "edgekit/lab/@all/cmd", "edgekit/lab/@shop/cmd"]
    assert publisher.state == {"groups": ["shop"], "commands": "refused: no --trust"}


def test_a_gated_agent_says_it_takes_signed_commands(gated):
    _, publisher, _ = gated
    assert publisher.state["commands"] == "signed"


def test_a_signed_command_runs(gated, owner):
    agent, publisher, deployer = gated
    agent.take("pi-1", seal({"id": "r1", "command": "rollback"}, owner, fleet="lab", target="pi-1"))
    assert deployer.rollbacks == ["r1"]
    assert publisher.sent == []  # the stand-in deployer reports nothing itself


@pytest.mark.parametrize(
    ("payload_for", "words"),
    [
        (lambda _owner: orjson.dumps({"id": "r1", "command": "rollback"}), "commands must be signed"),
        (
            lambda _owner: seal(
                {"id": "r1", "command": "rollback"}, Ed25519PrivateKey.generate(), fleet="lab", target="pi-1"
            ),
            "does not trust",
        ),
        (lambda owner: seal({"id": "r1", "command": "rollback"}, owner, fleet="lab", target="pi-2"), "cannot be moved"),
        (
            lambda owner: seal({"id": "r1", "command": "rollback"}, owner, fleet="lab", target="pi-1", now=1.0),
            "expired",
        ),
    ],
)
def test_commands_the_gate_refuses_are_reported_and_never_run(gated, owner, payload_for, words):
    agent, publisher, deployer = gated
    agent.take("pi-1", payload_for(owner))
    assert deployer.rollbacks == []
    ((_, event),) = publisher.sent
    assert (event["id"], event["status"]) == ("r1", "refused")
    assert words in event["detail"]


def test_a_replayed_signed_command_runs_once(gated, owner):
    agent, publisher, deployer = gated
    payload = seal({"id": "r1", "command": "rollback"}, owner, fleet="lab", target="pi-1")
    agent.take("pi-1", payload)
    agent.take("pi-1", payload)
    assert deployer.rollbacks == ["r1"]
    assert "taken before" in publisher.sent[-1][1]["detail"]


def test_a_device_without_keys_refuses_every_command_saying_why():
    agent, publisher, deployer = agent_with()
    agent.take("pi-1", orjson.dumps({"id": "r1", "command": "rollback"}))
    assert deployer.rollbacks == []
    ((_, event),) = publisher.sent
    assert event["status"] == "refused"
    assert event["detail"] == READ_ONLY


def test_a_deploy_with_a_local_path_or_no_size_is_refused_before_anything_is_fetched(gated, owner):
    agent, publisher, deployer = gated
    sha = "a" * 64
    for n, body in enumerate(
        [
            {"command": "deploy", "source": "/etc/shadow", "sha256": sha, "size": 10},
            {"command": "deploy", "source": "file:///etc/shadow", "sha256": sha, "size": 10},
            {"command": "deploy", "source": "http://h/b", "sha256": sha},
            {"command": "deploy", "source": "http://h/b", "sha256": sha, "size": 1 << 40},
            {"command": "deploy", "source": "x" * 5000, "sha256": sha, "size": 10},
        ]
    ):
        agent.take("pi-1", seal({**body, "id": f"d{n}"}, owner, fleet="lab", target="pi-1"))
    assert [e["status"] for _, e in publisher.sent] == ["refused"] * 5
    assert deployer.deploys == []
    details = [e["detail"] for _, e in publisher.sent]
    assert "never taken from the network" in details[0]
    assert "never taken from the network" in details[1]
    assert "needs 'size'" in details[2]
    assert "over this device's" in details[3]
    assert "at most 2048 characters" in details[4]


def test_an_unknown_command_is_refused_naming_the_known_ones():
    agent, publisher, _ = agent_with()
    agent.handle({"id": "c1", "command": "reboot"})
    ((topic, event),) = publisher.sent
    assert topic == "edgekit/lab/pi-1/events"
    assert event["status"] == "refused"
    assert "unknown command 'reboot'" in event["detail"]
    assert "deploy" in event["detail"]


def test_the_same_id_twice_runs_once():
    agent, _, deployer = agent_with()
    agent.handle({"id": "r1", "command": "rollback"})
    agent.handle({"id": "r1", "command": "rollback"})  # QoS 1 delivered it again
    assert deployer.rollbacks == ["r1"]


def test_a_commands_bug_is_reported_as_failed_and_the_next_command_runs():
    agent, publisher, _deployer = agent_with()

    def broken(_command_id, _doc):
        raise KeyError("oops")

    agent.commands["rollback"] = broken
    agent._handle_safely({"id": "r1", "command": "rollback"})
    assert statuses(publisher) == [("r1", "failed")]
    assert "KeyError" in publisher.sent[0][1]["detail"]
    agent._handle_safely({"id": "s1", "command": "status-typo"})
    assert statuses(publisher)[-1] == ("s1", "refused")


def test_bundle_chunks_go_to_the_fetcher_and_commands_to_the_queue(tmp_path):
    agent, publisher, deployer = agent_with(tmp_path)
    assert deployer.fetch == agent.chunks.fetch_command  # mqtt: sources are fetched over the connection
    publisher.on_message(f"edgekit/lab/@bundles/{'a' * 64}/0", b"\x00binary")
    assert agent._queue.empty()  # not a command
    assert agent.chunks._inbox.get_nowait() == (f"edgekit/lab/@bundles/{'a' * 64}/0", b"\x00binary")
    publisher.on_message("edgekit/lab/pi-1/cmd", b'{"id": "x", "command": "status"}')
    assert agent._queue.get_nowait() == ("pi-1", b'{"id": "x", "command": "status"}')
    publisher.on_message("edgekit/lab/@shop/cmd", b"{}")
    assert agent._queue.get_nowait() == ("@shop", b"{}")
    publisher.on_message("edgekit/lab/pi-2/cmd", b"{}")  # not this device's topic
    assert agent._queue.empty()


def test_the_mqtt_thread_drops_oversized_commands_and_floods_without_growing():
    agent, publisher, _ = agent_with()
    publisher.on_message("edgekit/lab/pi-1/cmd", b"x" * (1 << 20))
    assert agent._queue.empty()
    for _ in range(QUEUE * 3):
        publisher.on_message("edgekit/lab/pi-1/cmd", b"{}")
    assert agent._queue.qsize() == QUEUE
