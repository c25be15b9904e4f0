"""The operator's MQTT connection to a fleet: paho-mqtt and its callbacks, in one small adapter.

:class:`FleetLink` connects (MQTT 5, a clean session: an operator's view starts fresh), subscribes at QoS 1 to
``edgekit/{fleet}/+/state`` (retained: the broker sends every device's last state at once) and
``edgekit/{fleet}/+/events``, and hands each message on as a :class:`FleetMessage` through a queue; the caller
reads them with :meth:`FleetLink.next_message` on its own thread. :meth:`FleetLink.command` signs a command with
the operator's key (:func:`edgekit_runtime.fleet.signed_command.seal`: bound to the fleet and the target, with
the time and a nonce), publishes it at QoS 1 and waits for the broker's PUBACK. The broker URL and its TLS options
are the collector's (:class:`~edgekit.telemetry.collector.CollectorSettings`).
"""

from __future__ import annotations

import os
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgekit.errors import FleetError
from edgekit.fleet.rules import DeviceState
from edgekit_runtime.fleet.signed_command import seal
from edgekit_runtime.telemetry.mqtt import Client, log_in

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    import paho.mqtt.client as paho
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from paho.mqtt.client import ConnectFlags, DisconnectFlags
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit.telemetry.collector import CollectorSettings


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
    ) -> None:
        """Get ready to connect to ``settings.broker`` (nothing is sent yet); ``sign_key`` signs the commands."""
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
        #: what the broker answered each publish it refused (MQTT 5 PUBACK reason codes), by message id
        self._refusals: dict[int, str] = {}
        self.client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"edgekit-operator-{socket.gethostname()}-{os.getpid()}-{time.monotonic_ns() % 10**6}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        log_in(self.client, settings)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def __enter__(self) -> FleetLink:  # noqa: PYI034  (typing.Self needs Python 3.11; we support 3.10)
        """Connect and subscribe; :class:`FleetError` when the broker cannot be reached in time."""
        host, port = self.settings.address()
        where = self.settings.safe_url
        try:
            self.client.connect(host, port, self.settings.keepalive, clean_start=True)
        except (OSError, ssl.SSLError) as exc:
            raise FleetError(f"cannot reach the broker {where} ({exc}): check --broker and the network") from exc
        self.client.loop_start()
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
        self.client.disconnect()
        self.client.loop_stop()

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
        deadline = time.monotonic() + timeout
        try:
            infos = [self.client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages]
            for info in infos:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
        except (RuntimeError, ValueError) as exc:
            raise FleetError(f"cannot send {what} ({exc}): is the broker still there?") from exc
        if not all(info.is_published() for info in infos):
            raise FleetError(f"the broker did not take {what} in {timeout:g} s")
        with self._lock:
            refused = sorted({self._refusals.pop(info.mid) for info in infos if info.mid in self._refusals})
        if refused:
            raise FleetError(
                f"the broker refused {what} ({', '.join(refused)}): check --username and that the broker's ACL lets "
                "this account publish there (edgekit fleet provision's operator may)"
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

    # -- paho's callbacks (its network thread) --

    def _topics(self) -> list[tuple[str, int]]:
        return [(f"edgekit/{self.fleet}/+/state", 1), (f"edgekit/{self.fleet}/+/events", 1)]

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: ConnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._ready.set()
            return
        _, self._subscribe_mid = self.client.subscribe(self._topics())

    def _on_subscribe(
        self, _c: paho.Client, _u: object, mid: int, reasons: list[ReasonCode], _p: Properties | None
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self._refused = f"subscriptions refused: {', '.join(refused)}"
        self._ready.set()

    def _on_publish(self, _c: paho.Client, _u: object, mid: int, reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:  # Mosquitto answers "Not authorized" to a publish its ACL denies
            with self._lock:
                self._refusals[mid] = str(reason)

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: DisconnectFlags, _r: ReasonCode, _p: Properties | None
    ) -> None:
        self._ready.clear()

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        try:
            parts = message.topic.split("/")
            doc = orjson.loads(message.payload)
        except (UnicodeDecodeError, orjson.JSONDecodeError):
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
