"""The agent against a stand-in publisher: routing, refusals, at-least-once delivery and a command's bug."""

from __future__ import annotations

import orjson

from edgekit_runtime.fleet.agent import Agent, command_topics
from edgekit_runtime.fleet.chunks import ChunkFetcher
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

    def rollback(self, command_id: str) -> None:
        self.rollbacks.append(command_id)


def agent_with(tmp_path=None):
    publisher, deployer = Publisher(), Deployer()
    chunks = ChunkFetcher(publisher, "lab", tmp_path) if tmp_path is not None else None
    return Agent(publisher, TOPICS, deployer, ["shop"], chunks), publisher, deployer


def statuses(publisher: Publisher) -> list[tuple[str, str]]:
    return [(doc["id"], doc["status"]) for _, doc in publisher.sent]


def test_the_agent_subscribes_to_its_own_the_fleets_and_its_groups_topics():
    _, publisher, _ = agent_with()
    assert publisher.subscribed == command_topics(TOPICS, ["shop"])
    assert publisher.subscribed == ["edgekit/lab/pi-1/cmd", "edgekit/lab/@all/cmd", "edgekit/lab/@shop/cmd"]
    assert publisher.state == {"groups": ["shop"]}


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
    assert agent._queue.get_nowait() == {"id": "x", "command": "status"}
    publisher.on_message("edgekit/lab/pi-1/cmd", b"not json")
    assert agent._queue.empty()
