"""The device agent: fleet commands over MQTT in, progress out as events (issue 7).

Commands arrive on ``edgekit/{fleet}/{device}/cmd``, ``edgekit/{fleet}/@all/cmd`` and
``edgekit/{fleet}/@{group}/cmd`` for each ``--group`` (``@`` cannot start a device name, so group topics never
collide with a device's). A command is JSON: ``{"id": "...", "command": "deploy", "source": SOURCE,
"sha256": "..."}`` (``SOURCE``: ``mqtt:SHA256`` for a bundle published in chunks over MQTT, see
:mod:`edgekit_runtime.fleet.chunks`, an http(s) URL or a path on the device), ``{"id", "command": "rollback"}``,
``{"id", "command": "status"}``, ``{"id", "command": "rebirth"}`` (the retained state published again) or
``{"id", "command": "set-config", "config": {...}}`` (:mod:`edgekit_runtime.fleet.settings`). Its progress goes
to ``edgekit/{fleet}/{device}/events`` as ``edgekit.event/1`` messages, one per step (docs/telemetry.md).

Commands run one at a time on the agent's thread, never on the server's event loop; the same id twice (QoS 1
delivers at least once) runs once. The MQTT connection is the telemetry publisher's: one client per device.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson

from edgekit_runtime.fleet.deploy import DeployCommand, Phase

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edgekit_runtime.fleet.chunks import ChunkFetcher
    from edgekit_runtime.fleet.deploy import Deployer
    from edgekit_runtime.telemetry.mqtt import Topics
    from edgekit_runtime.telemetry.publisher import Publisher

logger = logging.getLogger("edgekit_runtime.fleet")

EVENT_SCHEMA = "edgekit.event/1"


def command_topics(topics: Topics, groups: Sequence[str]) -> list[str]:
    """The topics a device takes commands from."""
    fleet = topics.fleet
    return [
        f"edgekit/{fleet}/{topics.device}/cmd",
        f"edgekit/{fleet}/@all/cmd",
        *(f"edgekit/{fleet}/@{group}/cmd" for group in groups),
    ]


class Agent:
    """Takes commands from the publisher's connection and runs them through the deployer."""

    def __init__(
        self,
        publisher: Publisher,
        topics: Topics,
        deployer: Deployer,
        groups: Sequence[str] = (),
        chunks: ChunkFetcher | None = None,
    ) -> None:
        """Subscribe (on every connection) and route messages here; :meth:`start` runs the commands.

        ``chunks``: takes the messages of bundles published over MQTT (and is the deployer's fetch).
        """
        self.publisher = publisher
        self.topics = topics
        self.deployer = deployer
        self.chunks = chunks
        if chunks is not None:
            deployer.fetch = chunks.fetch_command
        deployer.emit = self.emit
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._seen: set[str] = set()
        self._thread: threading.Thread | None = None
        self._kind = "deploy"
        #: command name -> what runs it (with the command's id and its whole JSON document)
        self.commands: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "deploy": self._deploy,
            "rollback": self._rollback,
            "status": self._status,
            "rebirth": self._rebirth,
        }
        for topic in command_topics(topics, groups):
            publisher.subscribe(topic)
        publisher.on_message = self._receive
        publisher.update_state(groups=list(groups))  # the operator's --group reads it from the retained state

    def _receive(self, topic: str, payload: bytes) -> None:
        """On the MQTT thread: parse and queue (nothing slow here)."""
        if self.chunks is not None and self.chunks.offer(topic, payload):
            return
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            logger.warning("fleet: a command on %s is not JSON: ignored", topic)
            return
        if not isinstance(doc, dict):
            logger.warning("fleet: a command on %s is not a JSON object: ignored", topic)
            return
        self._queue.put(doc)

    def emit(self, command_id: str, phase: Phase | str, detail: str = "", command: str | None = None) -> None:
        """Publish one step of a command (``command``: the kind; by default the one running)."""
        model = self.deployer.serving
        event = {
            "schema": EVENT_SCHEMA,
            "fleet": self.topics.fleet,
            "device": self.topics.device,
            "id": command_id,
            "command": command or self._kind,
            "status": phase.value if isinstance(phase, Phase) else phase,
            "detail": detail[:2000],
            "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
            "time": time.time(),
        }
        self.publisher.send(f"edgekit/{self.topics.fleet}/{self.topics.device}/events", orjson.dumps(event))

    def start(self) -> None:
        """Run commands on a thread of the agent's own."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgekit-fleet-agent", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the command running now, then stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def _run(self) -> None:
        while (doc := self._queue.get()) is not None:
            self._handle_safely(doc)

    def _handle_safely(self, doc: dict[str, Any]) -> None:
        try:
            self.handle(doc)
        except Exception as exc:  # one command's bug must not stop the next, nor leave the operator waiting
            logger.exception("fleet: a command failed unexpectedly")
            command_id = doc.get("id")
            if isinstance(command_id, str):
                self.emit(command_id, Phase.FAILED, f"the device failed unexpectedly ({type(exc).__name__}: {exc})")

    def handle(self, doc: dict[str, Any]) -> None:
        """Run one command."""
        command_id, command = doc.get("id"), doc.get("command")
        if not isinstance(command_id, str) or not 1 <= len(command_id) <= 128:  # noqa: PLR2004
            logger.warning("fleet: a command without a usable id was ignored: %.200s", doc)
            return
        if command_id in self._seen:
            return  # delivered again: it ran already
        self._seen.add(command_id)
        self._kind = str(command)
        run = self.commands.get(command) if isinstance(command, str) else None
        if run is None:
            known = ", ".join(self.commands)
            self.emit(command_id, Phase.REFUSED, f"unknown command {command!r}: use one of {known}")
            return
        run(command_id, doc)

    def _status(self, command_id: str, _doc: dict[str, Any]) -> None:
        state = self.deployer.store.state()
        self.emit(command_id, "done", orjson.dumps(state).decode())
        self.publisher.update_state()

    def _rebirth(self, command_id: str, _doc: dict[str, Any]) -> None:
        """Sparkplug's name for "publish your state again": the retained state goes out before the ``done``."""
        self.publisher.update_state()
        self.emit(command_id, "done", "the retained state was published again")

    def _rollback(self, command_id: str, _doc: dict[str, Any]) -> None:
        self.deployer.rollback(command_id)

    def _deploy(self, command_id: str, doc: dict[str, Any]) -> None:
        source, sha256 = doc.get("source"), doc.get("sha256")
        if not isinstance(source, str) or not source or (sha256 is not None and not isinstance(sha256, str)):
            self.emit(
                command_id,
                Phase.REFUSED,
                "a deploy needs 'source' (mqtt:SHA256, a URL or a path) and, optionally, 'sha256'",
            )
            return
        self.deployer.deploy(DeployCommand(command_id, source, sha256))
