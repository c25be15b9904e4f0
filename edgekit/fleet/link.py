"""The operator's MQTT connection to a fleet: signed commands out, device states and events in.

:class:`FleetLink` connects (MQTT 5, a clean session: an operator's view starts fresh), subscribes at QoS 1 to
``edgekit/{fleet}/+/state`` (retained: the broker sends every device's last state at once) and
``edgekit/{fleet}/+/events``, and hands each message on as a :class:`FleetMessage` through a queue; the caller
reads them with :meth:`FleetLink.next_message` on its own thread. :meth:`FleetLink.command` signs a command with
the operator's key (:func:`edgekit_runtime.fleet.signed_command.seal`: bound to the fleet and the target, with
the time and a nonce), publishes it at QoS 1 and waits for the broker's PUBACK
(:func:`~edgekit_runtime.mqtt.connection.publish_and_wait`). The broker URL and its TLS options are the collector's
(:class:`~edgekit.telemetry.collector.CollectorSettings`). The connection is the one MQTT layer's
(:mod:`edgekit_runtime.mqtt`), driven by the link's own network thread, which reconnects with backoff.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from edgekit.errors import FleetError
from edgekit.fleet.rules import DeviceState
from edgekit_runtime.fleet.signed_command import seal
from edgekit_runtime.mqtt.backoff import Backoff
from edgekit_runtime.mqtt.connection import Connected, ConnectRefused, Disconnected, Subscribed, publish_and_wait
from edgekit_runtime.mqtt.paho_connection import PahoConnection

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgekit.telemetry.collector.settings import CollectorSettings
    from edgekit_runtime.mqtt.connection import Connector, Event, Message

#: one turn of the link's network loop waits at most this long for the socket (and a publish from another thread
#: waits at most this long to be sent)
LOOP_SECONDS = 0.01


@dataclass(frozen=True)
class FleetMessage:
    """One message from a device: its kind (``state`` or ``events``), the device, the JSON object."""

    kind: str
    device: str
    doc: dict[str, Any]
    #: when it arrived here (Unix seconds)
    received: float


class FleetLink:
    """``with FleetLink(settings) as link:`` a connection to ``settings.fleet``'s commands, states and events."""

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        sign_key: Ed25519PrivateKey | None = None,
        connect_timeout: float = 10.0,
        connector: Connector = PahoConnection,
    ) -> None:
        """Get ready to connect to ``settings.broker`` (nothing is sent yet); ``sign_key`` signs the commands.

        ``connector`` makes the connection (an in-memory one for tests: :mod:`edgekit_runtime.mqtt.testing`).
        """
        if settings.fleet == "+":
            raise FleetError("a fleet operation needs one fleet: give --fleet NAME")
        self.settings = settings
        self.sign_key = sign_key
        self.fleet = settings.fleet
        self.connect_timeout = connect_timeout
        self.states: dict[str, DeviceState] = {}
        self._messages: queue.Queue[FleetMessage] = queue.Queue()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._refused: str | None = None
        self._subscribe_mid: int | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._delays = Backoff(1.0, 120.0)  # between reconnects; paho's own were 1 to 120 s
        client_id = f"edgekit-operator-{socket.gethostname()}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        self.connection = connector(dataclasses.replace(settings.mqtt, client_id=client_id))

    def __enter__(self) -> FleetLink:  # noqa: PYI034  (typing.Self needs Python 3.11; we support 3.10)
        """Connect and subscribe; :class:`FleetError` when the broker cannot be reached in time."""
        where = self.settings.safe_url
        try:
            self.connection.connect(clean_start=True)
        except (OSError, ssl.SSLError) as exc:
            raise FleetError(f"cannot reach the broker {where} ({exc}): check --broker and the network") from exc
        self._thread = threading.Thread(target=self._run, name="edgekit-fleet-link", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.connect_timeout) or self._refused is not None:
            self.close()
            why = self._refused or f"no answer in {self.connect_timeout:g} s"
            raise FleetError(f"the broker {where} did not let us in ({why}): check --broker and the credentials")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Disconnect."""
        self.close()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.connection.close()

    def command(self, target: str, doc: dict[str, Any], timeout: float = 10.0) -> None:
        """Sign ``doc`` for ``target`` (a device id, ``@all``, ``@group``), publish it, wait for the broker's PUBACK."""
        if self.sign_key is None:
            raise FleetError(
                "fleet commands are signed: give --sign-key KEY (the .key of edgekit keygen whose .pub the devices "
                "trust with --trust)"
            )
        topic = f"edgekit/{self.fleet}/{target}/cmd"
        payload = seal(doc, self.sign_key, fleet=self.fleet, target=target)
        self.publish([(topic, payload)], timeout, what=f"a command to {target}")

    def publish(
        self, messages: Sequence[tuple[str, bytes]], timeout: float = 10.0, *, retain: bool = False, what: str = ""
    ) -> None:
        """Publish ``messages`` at QoS 1 and wait until the broker has taken every one (its PUBACKs)."""
        what = what or f"{len(messages)} messages"
        outcome = publish_and_wait(self.connection, messages, timeout, retain=retain)
        if outcome.error is not None:
            raise FleetError(f"cannot send {what} ({outcome.error}): is the broker still there?")
        if outcome.unanswered:
            raise FleetError(f"the broker did not take {what} in {timeout:g} s")
        if outcome.refusals:  # Mosquitto answers "Not authorized" to a publish its ACL denies
            raise FleetError(
                f"the broker refused {what} ({', '.join(outcome.refusals)}): check --username and that the broker's "
                "ACL lets this account publish there (edgekit fleet provision's operator may)"
            )

    def next_message(self, timeout: float) -> FleetMessage | None:
        """The next state or event message, or ``None`` after ``timeout`` seconds."""
        try:
            return self._messages.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def collect_states(self, seconds: float = 1.0) -> list[DeviceState]:
        """Wait ``seconds`` for the retained states (they come right after subscribing), then every device's."""
        time.sleep(seconds)
        with self._lock:
            return sorted(self.states.values(), key=lambda s: s.device)

    # -- the link's network thread --

    def _run(self) -> None:
        """Run the connection until :meth:`close`, reconnecting when it is lost."""
        while not self._closing.is_set():
            if not self.connection.alive:
                if self._closing.wait(self._delays.next()):
                    break
                try:
                    self.connection.connect(clean_start=True)
                except (OSError, ValueError):
                    continue
            self._handle(self.connection.loop(LOOP_SECONDS))
            while not self.connection.messages.empty():  # this thread is the only reader
                self._on_message(self.connection.messages.get_nowait())
        self._handle(self.connection.disconnect(timeout=1.0))

    def _topics(self) -> list[str]:
        return [f"edgekit/{self.fleet}/+/state", f"edgekit/{self.fleet}/+/events"]

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Connected):
                self._delays.reset()
                self._subscribe_mid = self.connection.subscribe(self._topics())
            elif isinstance(event, ConnectRefused):
                self._refused = event.reason
                self._ready.set()
            elif isinstance(event, Subscribed) and event.mid == self._subscribe_mid:
                refused = [reason for reason in event.refusals if reason is not None]
                if refused:
                    self._refused = f"subscriptions refused: {', '.join(refused)}"
                self._ready.set()
            elif isinstance(event, Disconnected):
                self._ready.clear()

    def _on_message(self, message: Message) -> None:
        try:
            parts = message.topic.split("/")
            doc = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            return  # not a device's message: nothing an operator can act on
        if len(parts) != 4 or not isinstance(doc, dict):  # noqa: PLR2004  (edgekit/FLEET/DEVICE/KIND)
            return
        kind, device = parts[3], parts[2]
        if doc.get("device") != device:
            return  # a message that speaks for another device than its topic's: a spoof, never believed
        if kind == "state":
            state = DeviceState.from_message(doc)
            if state is None:
                return
            with self._lock:
                self.states[device] = state
        self._messages.put(FleetMessage(kind, device, doc, time.time()))
