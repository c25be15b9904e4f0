"""The device agent: fleet commands over MQTT in, progress out as events (issues 7 and 17).

Commands arrive on ``edgekit/{fleet}/{device}/cmd``, ``edgekit/{fleet}/@all/cmd`` and
``edgekit/{fleet}/@{group}/cmd`` for each ``--group`` (``@`` cannot start a device name, so group topics never
collide with a device's). Each is signed by the fleet's owner (:mod:`edgekit_runtime.fleet.signed_command`): the
agent opens the envelope through its :class:`~edgekit_runtime.fleet.signed_command.CommandGate` and runs only
what a trusted key signed, for this device, recently, and once. A device started without trusted keys has no
gate: it still sends telemetry, and refuses every command, saying why (read-only).

A command's body is JSON, one of the contract's commands (:mod:`edgekit_runtime.contract.commands`, whose types
and bounds are what the device takes): ``{"id": "...", "command": "deploy", "source": SOURCE, "sha256": "...",
"size": N}`` (``SOURCE``: ``mqtt:SHA256`` for a bundle published in chunks over MQTT, see
:mod:`edgekit_runtime.fleet.chunks`, or an http(s) URL; ``allow_downgrade`` and ``allow_schema_change`` may say
yes to what is refused otherwise, see :func:`edgekit_runtime.fleet.deploy_command.judge_candidate`),
``{"id", "command": "rollback"}``, ``{"id", "command": "status"}``, ``{"id", "command": "rebirth"}`` (the retained
state published again), ``{"id", "command": "resend", "ranges": [[FIRST, LAST], ...]}`` (telemetry windows sent
again from the outbox's replay: :mod:`edgekit_runtime.fleet.resend`) or
``{"id", "command": "set-config", "config": {...}}`` (:mod:`edgekit_runtime.fleet.settings`). Each command that
has fields decodes them into its Struct
(:meth:`~edgekit_runtime.fleet.deploy_command.DeployCommand.from_body`, :func:`edgekit_runtime.fleet.settings.check`)
and is refused in words that name the field. Its progress goes to ``edgekit/{fleet}/{device}/events`` as
``edgekit.event/1`` messages, one per step (docs/telemetry.md).

Commands are checked and run one at a time on the agent's thread, never on the server's event loop or the MQTT
thread, which only queues them (a bounded queue: a flood is dropped, not stored). The same id twice (QoS 1 delivers
at least once) runs once. The MQTT connection is the telemetry publisher's (its
:class:`~edgekit_runtime.telemetry.channel.Channel`): one client per device.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from edgekit_runtime.contract.commands import CommandId
from edgekit_runtime.contract.events import MAX_DETAIL, Event, EventModel, Resent
from edgekit_runtime.contract.statuses import DONE, UNKNOWN, Phase
from edgekit_runtime.errors import CommandError
from edgekit_runtime.fleet.deploy_command import DEFAULT_MAX_BUNDLE, DeployCommand
from edgekit_runtime.fleet.signed_command import readable_id

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edgekit_runtime.fleet.chunks import ChunkFetcher
    from edgekit_runtime.fleet.deploy import Deployer
    from edgekit_runtime.fleet.signed_command import CommandGate
    from edgekit_runtime.telemetry.channel import Channel
    from edgekit_runtime.telemetry.mqtt import Topics

logger = logging.getLogger("edgekit_runtime.fleet")

#: commands waiting for the agent's thread at most; more are dropped (with a log line)
QUEUE = 64
#: bytes of a command message read at most when the device has no gate to say otherwise
MAX_COMMAND_BYTES = 64 << 10
#: why a device without trusted keys refuses every command
READ_ONLY = (
    "this device trusts no key (started without --trust), so it takes no fleet commands and sends telemetry only: "
    "restart it with --trust OWNER.pub to let the fleet's owner steer it"
)


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
        publisher: Channel,
        topics: Topics,
        deployer: Deployer,
        groups: Sequence[str] = (),
        chunks: ChunkFetcher | None = None,
        *,
        gate: CommandGate | None = None,
        max_bundle_bytes: int = DEFAULT_MAX_BUNDLE,
    ) -> None:
        """Subscribe (on every connection) and route messages here; :meth:`start` runs the commands.

        ``chunks``: takes the messages of bundles published over MQTT (and is the deployer's fetch); ``gate``: opens
        signed commands (``None``: the device takes none, see :data:`READ_ONLY`); ``max_bundle_bytes``: the largest
        bundle a deploy may name.
        """
        self.publisher = publisher
        self.topics = topics
        self.deployer = deployer
        self.chunks = chunks
        self.gate = gate
        self.max_bundle_bytes = max_bundle_bytes
        if chunks is not None:
            deployer.fetch = chunks.fetch_command
        deployer.emit = self.emit
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(QUEUE)
        self._targets = {topic: topic.split("/")[2] for topic in command_topics(topics, groups)}
        self._max_bytes = gate.policy.max_bytes if gate is not None else MAX_COMMAND_BYTES
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
        for topic in self._targets:
            publisher.subscribe(topic)
        publisher.on_message = self._receive
        # the operator's --group reads the groups from the retained state, and anyone whether commands are taken
        publisher.update_state(groups=list(groups), commands="signed" if gate is not None else "refused: no --trust")

    def _receive(self, topic: str, payload: bytes) -> None:
        """On the MQTT thread: queue a command from one of the agent's topics (nothing slow here)."""
        if self.chunks is not None and self.chunks.offer(topic, payload):
            return
        target = self._targets.get(topic)
        if target is None:
            return  # not a topic of this device's
        if len(payload) > self._max_bytes:
            logger.warning("fleet: a command of %d bytes on %s is over the limit: dropped unread", len(payload), topic)
            return
        try:
            self._queue.put_nowait((target, payload))
        except queue.Full:
            logger.warning("fleet: %d commands are waiting already: one on %s was dropped", QUEUE, topic)

    def emit(
        self,
        command_id: str,
        phase: Phase | str,
        detail: str = "",
        command: str | None = None,
        *,
        resent: Resent | None = None,
    ) -> None:
        """Publish one step of a command (``command``: the kind; by default the one running; ``resent``: a resend's)."""
        model = self.deployer.serving
        event = Event(
            fleet=self.topics.fleet,
            device=self.topics.device,
            id=command_id,
            command=command or self._kind,
            status=phase.value if isinstance(phase, Phase) else phase,
            detail=detail[:MAX_DETAIL],
            model=EventModel(model.name, model.version, model.sha256),
            time=time.time(),
            resent=resent,
        )
        self.publisher.send(f"edgekit/{self.topics.fleet}/{self.topics.device}/events", msgspec.json.encode(event))

    def start(self) -> None:
        """Run commands on a thread of the agent's own."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgekit-fleet-agent", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the command running now, then stop."""
        self._queue.put(None)  # waits for a place: the thread keeps taking
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            self.take(*message)

    def take(self, target: str, payload: bytes) -> None:
        """Open a command that arrived on ``target``'s topic and run it, or report why not (a ``refused`` event)."""
        doc: dict[str, Any] = {}
        try:
            if self.gate is None:
                raise CommandError(READ_ONLY, command_id=readable_id(payload))  # noqa: TRY301  (one refusal path)
            doc = self.gate.open(payload, target)
            self._handle_safely(doc)
        except CommandError as exc:
            logger.warning("fleet: a command on %s was refused: %s", target, exc)
            if exc.command_id is not None:
                command = doc.get("command")
                known = command if isinstance(command, str) and command in self.commands else UNKNOWN
                self.emit(exc.command_id, Phase.REFUSED, str(exc), command=known)
        except Exception:  # the gate's own bug must not stop the agent
            logger.exception("fleet: a command could not be checked")

    def _handle_safely(self, doc: dict[str, Any]) -> None:
        try:
            self.handle(doc)
        except CommandError:
            raise
        except Exception as exc:  # one command's bug must not stop the next, nor leave the operator waiting
            logger.exception("fleet: a command failed unexpectedly")
            command_id = doc.get("id")
            if isinstance(command_id, str):
                self.emit(command_id, Phase.FAILED, f"the device failed unexpectedly ({type(exc).__name__}: {exc})")

    def handle(self, doc: dict[str, Any]) -> None:
        """Run one command whose envelope was opened (its signature, target, age and nonce checked)."""
        try:
            command_id: str = msgspec.convert(doc.get("id"), CommandId)
        except msgspec.ValidationError:
            logger.warning("fleet: a command without a usable id was ignored: %.200s", doc)
            return
        command = doc.get("command")
        if command_id in self._seen:
            return  # delivered again: it ran already
        self._seen.add(command_id)
        self._kind = command if isinstance(command, str) and command in self.commands else UNKNOWN
        run = self.commands.get(command) if isinstance(command, str) else None
        if run is None:
            known = ", ".join(self.commands)
            self.emit(command_id, Phase.REFUSED, f"unknown command {command!r}: use one of {known}")
            return
        run(command_id, doc)

    def _status(self, command_id: str, _doc: dict[str, Any]) -> None:
        state = self.deployer.store.state()
        self.emit(command_id, DONE, orjson.dumps(state).decode())
        self.publisher.update_state()

    def _rebirth(self, command_id: str, _doc: dict[str, Any]) -> None:
        """Sparkplug's name for "publish your state again": the retained state goes out before the ``done``."""
        self.publisher.update_state()
        self.emit(command_id, DONE, "the retained state was published again")

    def _rollback(self, command_id: str, _doc: dict[str, Any]) -> None:
        self.deployer.rollback(command_id)

    def _deploy(self, command_id: str, doc: dict[str, Any]) -> None:
        self.deployer.deploy(DeployCommand.from_body(command_id, doc, max_bytes=self.max_bundle_bytes))
