"""What a device says and hears on its MQTT connection besides telemetry windows.

:class:`Channel` holds it between connections, for any thread: the retained state message (and whether it
changed), messages to publish once connected (fleet events, kept until the broker's PUBACK), the topics to
subscribe to on every connection, and who hears the messages that arrive on them. The publisher's session
takes from it on the publisher's thread (:mod:`edgekit_runtime.telemetry.session`); the fleet agent, the chunk
fetcher and ``set-config`` use it through the publisher, which is one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec

from edgekit_runtime.contract.state import State
from edgekit_runtime.mqtt.connection import Properties, Will

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from edgekit_runtime.telemetry.mqtt import Topics

logger = logging.getLogger("edgekit_runtime.telemetry")


class Channel:
    """The device's state, side messages and subscriptions; thread-safe."""

    def __init__(self, topics: Topics, state: Mapping[str, Any] | None = None) -> None:
        """``state``: what the retained ``online`` message says besides status (model, runtime, ...)."""
        self.topics = topics
        #: the ``online`` state; each message is a copy with its own status and time
        self._state = State(topics.fleet, topics.device, "online", 0.0, **(state or {}))
        self._state_changed = threading.Event()
        #: topics subscribed on every connection (QoS 1), and who is told of their messages
        self.subscriptions: list[str] = []
        self._subscribe_changes: list[tuple[bool, str]] = []
        self.on_message: Callable[[str, bytes], None] | None = None
        #: messages besides telemetry (fleet events): kept until a PUBACK, sent again on the next connection
        self._side: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def state_payload(self, status: str, **extra: object) -> bytes:
        """The retained state message: ``status`` now, with ``extra`` fields (an offline one's ``reason``)."""
        return msgspec.json.encode(msgspec.structs.replace(self._state, status=status, since=time.time(), **extra))

    def will(self) -> Will:
        """The Last Will: a retained ``offline`` state, reason ``lost``."""
        payload = self.state_payload("offline", reason="lost")
        return Will(self.topics.state, payload, properties=Properties(content_type="application/json"))

    def update_state(self, **fields: object) -> None:
        """Change what the retained ``online`` state says (a new model), and publish it again.

        ``fields`` are :class:`~edgekit_runtime.contract.state.State`'s (another name is a ``TypeError``).
        """
        self._state = msgspec.structs.replace(self._state, **fields)
        self._state_changed.set()

    def take_state_change(self) -> bool:
        """Whether the state changed since the last time this was asked."""
        changed = self._state_changed.is_set()
        self._state_changed.clear()
        return changed

    def send(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` on ``topic`` (QoS 1) when connected; kept in memory until the broker has it."""
        with self._lock:
            self._side.append((topic, payload))

    def take_side(self) -> list[tuple[str, bytes]]:
        """The messages waiting to be published, taken."""
        with self._lock:
            taken, self._side = self._side, []
        return taken

    def put_back(self, unsent: list[tuple[str, bytes]]) -> None:
        """Messages taken that the broker did not acknowledge: first in line next time."""
        with self._lock:
            self._side[:0] = unsent

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` now (when connected) and on every later connection; any thread."""
        with self._lock:
            if topic not in self.subscriptions:
                self.subscriptions.append(topic)
                self._subscribe_changes.append((True, topic))

    def unsubscribe(self, topic: str) -> None:
        """Undo :meth:`subscribe`; any thread."""
        with self._lock:
            if topic in self.subscriptions:
                self.subscriptions.remove(topic)
                self._subscribe_changes.append((False, topic))

    def take_subscribe_changes(self, *, all_now: bool = False) -> list[tuple[bool, str]]:
        """The (un)subscriptions to make; ``all_now``: on a new connection, every subscription."""
        with self._lock:
            changes = [(True, topic) for topic in self.subscriptions] if all_now else self._subscribe_changes
            self._subscribe_changes = []
        return changes

    def hear(self, topic: str, payload: bytes) -> None:
        """Tell :attr:`on_message` of a message that arrived (its bug is logged, never raised)."""
        if self.on_message is not None:
            try:
                self.on_message(topic, payload)
            except Exception:  # the receiver's bug must not end the session
                logger.exception("handling a message on %s failed", topic)
