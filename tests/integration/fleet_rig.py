"""What the fleet's integration tests share: signed digits bundles, and a plain MQTT client that records every
command, event and state of a fleet in the order the broker delivered them, and sends commands."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source
from tests.integration.rig import wait_for

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def signed_digits(folder: Path, versions: tuple[str, ...] = ("1.0.0", "2.0.0")) -> tuple[Path, dict[str, Path]]:
    """A key pair in ``folder`` and the digits MLP signed with it as each of ``versions``: (public key, bundles)."""
    private, public = generate_keypair(folder / "fleet")
    data = PackData(calib=DIGITS / "mlp_calib.npz", eval=DIGITS / "mlp_test.npz")
    bundles = {
        v: pack_source(
            str(DIGITS / "mlp.onnx"), folder, BundleOptions(name="digits-mlp", version=v, signing_key=private), data
        ).path
        for v in versions
    }
    return public, bundles


def device_args(  # noqa: PLR0917  (a device's six facts, then its own flags)
    bundle: Path, public: Path, broker, fleet: str, name: str, folder: Path, *extra: str
) -> list[str]:
    """``edgekit-runtime serve`` arguments for device ``name`` of ``fleet``.

    Any free port, ``public`` trusted, telemetry and commands over ``broker``, its state in ``folder / name``,
    then ``extra``.
    """
    return [
        str(bundle),
        *("--port", "0", "--trust", str(public), "--mqtt", broker.url, "--fleet", fleet, "--device", name),
        *("--state-dir", str(folder / name), "--mqtt-reconnect-max", "1", *extra),
    ]


class FleetRecorder:
    """Every ``cmd``, ``events`` and ``state`` message of ``fleet``, in order; publishes commands."""

    def __init__(self, port: int, fleet: str) -> None:
        self.fleet = fleet
        self.seen: list[tuple[str, str, dict]] = []  # (kind, device, doc)
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"edgekit/{fleet}/+/{kind}", 1) for kind in ("cmd", "events", "state")])
        self.client.loop_start()

    def _message(self, _client, _userdata, message) -> None:
        _, _, device, kind = message.topic.split("/")
        with self.lock:
            self.seen.append((kind, device, json.loads(message.payload)))

    def docs(self, kind: str, device: str | None = None, id_prefix: str = "") -> list[dict]:
        """The messages of ``kind`` (of ``device``; with an id that starts with ``id_prefix``), in order."""
        with self.lock:
            return [
                doc
                for k, d, doc in self.seen
                if k == kind and device in (None, d) and str(doc.get("id", "")).startswith(id_prefix)
            ]

    def index(self, kind: str, device: str, *, id_prefix: str, status: str | None = None) -> list[int]:
        """Where such messages are in the order of arrival."""
        with self.lock:
            return [
                i
                for i, (k, d, doc) in enumerate(self.seen)
                if k == kind
                and d == device
                and str(doc.get("id", "")).startswith(id_prefix)
                and (status is None or doc.get("status") == status)
            ]

    @property
    def states(self) -> dict[str, dict]:
        """Each device's latest state."""
        return {doc["device"]: doc for doc in self.docs("state")}

    @property
    def events(self) -> list[dict]:
        """Every event, in order."""
        return self.docs("events")

    def events_for(self, id_prefix: str) -> list[dict]:
        """The events of the commands whose ids start with ``id_prefix``."""
        return self.docs("events", id_prefix=id_prefix)

    def statuses(self, command_id: str, device: str | None = None) -> list[str]:
        """A command's statuses (on ``device``), in order."""
        return [e["status"] for e in self.docs("events", device) if e["id"] == command_id]

    def event(self, command_id: str, status: str, device: str | None = None) -> dict:
        """A command's (first) event with ``status``."""
        return next(e for e in self.docs("events", device) if e["id"] == command_id and e["status"] == status)

    def version(self, device: str) -> str | None:
        """The model version ``device`` last said it serves."""
        return self.states.get(device, {}).get("model", {}).get("version")

    def online(self, *devices: str) -> bool:
        """Whether each of ``devices`` last said ``online``."""
        states = self.states
        return all(states.get(d, {}).get("status") == "online" for d in devices)

    def wait_online(self, *devices: str) -> None:
        """Until each device says ``online`` (a device subscribes before it says so: it takes commands then)."""
        wait_for(lambda: self.online(*devices), 20, f"{', '.join(devices)} online")

    def command(self, target: str, **doc) -> str:
        """Publish a command to ``target`` (a device, ``@all``, ``@group``); its id."""
        doc.setdefault("id", uuid.uuid4().hex)
        self.client.publish(f"edgekit/{self.fleet}/{target}/cmd", json.dumps(doc), qos=1).wait_for_publish(10)
        return doc["id"]

    def close(self) -> None:
        """Disconnect."""
        self.client.loop_stop()
        self.client.disconnect()
