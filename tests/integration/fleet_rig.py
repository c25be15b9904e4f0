"""What the fleet's integration tests share: signed digits bundles, and a plain MQTT client that records every
command, event and state of a fleet in the order the broker delivered them, and sends commands.

Commands are signed as ``edgekit fleet`` signs them (:func:`edgekit_runtime.fleet.signed_command.seal`), with the
private key :func:`signed_digits` made (``fleet.key``; the devices trust ``fleet.pub``). :meth:`FleetRecorder.publish`
sends any payload as it is, for the tests of what a device refuses. A deploy names where the device fetches the
bundle: an HTTP server on loopback (:meth:`FleetRecorder.serve`) or retained chunks on the broker
(:meth:`FleetRecorder.publish_chunks`), with the bundle file's sha256 and size.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.signing import generate_keypair, load_private_key
from edgekit.bundle.source import PackData, pack_source
from edgekit.fleet.bundle_source import BundleServer, LocalBundle
from edgekit_runtime.fleet.chunks import bundle_topic, manifest_for, mqtt_source
from edgekit_runtime.fleet.signed_command import SCHEMA, seal
from tests.integration.rig import wait_for

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
#: what a recorder subscribes to, by default
KINDS = ("cmd", "events", "state")


def signed_digits(folder: Path, versions: tuple[str, ...] = ("1.0.0", "2.0.0")) -> tuple[Path, dict[str, Path]]:
    """A key pair in ``folder`` and the digits MLP signed with it as each of ``versions``: (public key, bundles).

    The private key, which signs the bundles and the fleet's commands, is ``public.with_suffix(".key")``.
    """
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
    bundle: Path, public: Path | None, broker, fleet: str, name: str, folder: Path, *extra: str
) -> list[str]:
    """``edgekit-runtime serve`` arguments for device ``name`` of ``fleet``.

    Any free port, ``public`` trusted (``None``: no ``--trust``, a read-only device), telemetry and commands over
    ``broker``, its state in ``folder / name``, then ``extra``.
    """
    trust = ("--trust", str(public)) if public is not None else ()
    return [
        str(bundle),
        *("--port", "0", *trust, "--mqtt", broker.url, "--fleet", fleet, "--device", name),
        *("--state-dir", str(folder / name), "--mqtt-reconnect-max", "1", *extra),
    ]


def local_bundle(path: Path) -> LocalBundle:
    """``path`` as the host's rollout sees it, hashed but not opened (so a damaged bundle can be served too)."""
    data = Path(path).read_bytes()
    return LocalBundle(Path(path), Path(path).stem, "", hashlib.sha256(data).hexdigest(), len(data))


def _parsed(payload: bytes) -> dict | None:
    """A message as a JSON object: a command's signed body (``envelope`` keeps the rest), or ``{"raw": ...}``."""
    if not payload:
        return None  # a retained message cleared
    try:
        doc = json.loads(payload)
    except ValueError:
        return {"raw": payload}
    if not isinstance(doc, dict):
        return {"raw": payload}
    if doc.get("schema") == SCHEMA and isinstance(doc.get("body"), str):
        try:
            body = json.loads(doc["body"])
        except ValueError:
            return {"envelope": doc}
        return {**body, "envelope": doc} if isinstance(body, dict) else {"envelope": doc}
    return doc


class FleetRecorder:
    """Every ``cmd``, ``events`` and ``state`` message of ``fleet``, in order; signs and publishes commands.

    ``sign_key``: the fleet owner's private key (a ``.key`` file or the key), which :meth:`command` and
    :meth:`deploy` sign with; ``kinds``: the topic kinds recorded (add ``telemetry`` to count windows).
    A ``cmd`` message is recorded as its signed body (with the envelope under ``envelope``).
    """

    def __init__(
        self,
        port: int,
        fleet: str,
        sign_key: Path | Ed25519PrivateKey | None = None,
        *,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.fleet = fleet
        self.key = load_private_key(sign_key) if isinstance(sign_key, (str, Path)) else sign_key
        self.seen: list[tuple[str, str, dict]] = []  # (kind, device, doc)
        self.lock = threading.Lock()
        self.servers: dict[Path, BundleServer] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"edgekit/{fleet}/+/{kind}", 1) for kind in kinds])
        self.client.loop_start()

    def _message(self, _client, _userdata, message) -> None:
        _, _, device, kind = message.topic.split("/")
        doc = _parsed(bytes(message.payload))
        if doc is not None:
            with self.lock:
                self.seen.append((kind, device, doc))

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

    def wait_status(self, command_id: str, status: str, device: str | None = None, timeout: float = 30) -> dict:
        """A command's first event with ``status``, once it came."""
        wait_for(lambda: status in self.statuses(command_id, device), timeout, f"{command_id} {status}")
        return self.event(command_id, status, device)

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

    # -- sending --

    def envelope(
        self,
        target: str,
        *,
        key: Ed25519PrivateKey | None = None,
        fleet: str | None = None,
        now: float | None = None,
        **doc: Any,
    ) -> tuple[str, bytes]:
        """The id and signed envelope of a command to ``target`` (by ``key``, for ``fleet``: by default ours)."""
        signer = key or self.key
        assert signer is not None, "this recorder has no sign_key: give FleetRecorder(..., sign_key=...)"
        doc.setdefault("id", uuid.uuid4().hex)
        return doc["id"], seal(doc, signer, fleet=fleet or self.fleet, target=target, now=now)

    def publish(self, target: str, payload: bytes | str | dict, *, retain: bool = False) -> None:
        """Publish ``payload`` as it is (a dict as JSON) on ``target``'s command topic."""
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        self.client.publish(f"edgekit/{self.fleet}/{target}/cmd", data, qos=1, retain=retain).wait_for_publish(10)

    def command(self, target: str, *, retain: bool = False, **doc: Any) -> str:
        """Sign a command for ``target`` (a device, ``@all``, ``@group``) and publish it; its id."""
        command_id, payload = self.envelope(target, **doc)
        self.publish(target, payload, retain=retain)
        return command_id

    def serve(self, bundle: Path) -> str:
        """The URL of ``bundle`` served over HTTP on loopback until :meth:`close`."""
        path = Path(bundle).resolve()
        if path not in self.servers:
            self.servers[path] = BundleServer(local_bundle(path), "127.0.0.1", 0).__enter__()
        return self.servers[path].url

    def publish_chunks(self, bundle: Path, chunk_size: int = 64 << 10) -> str:
        """Publish ``bundle`` as retained chunks and their manifest on the broker; the ``mqtt:`` source."""
        data = Path(bundle).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        manifest, pieces = manifest_for(data, chunk_size)
        base = bundle_topic(self.fleet, sha)
        messages = [*((f"{base}/{i}", piece) for i, piece in enumerate(pieces)), (f"{base}/manifest", manifest)]
        for info in [self.client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]:
            info.wait_for_publish(10)
        return mqtt_source(sha)

    def deploy_body(self, bundle: Path, *, via: str = "http", **flags: bool) -> dict[str, Any]:
        """A deploy command's fields for ``bundle``, fetched ``via`` ``http`` or ``mqtt`` (chunks); not yet sent."""
        source = self.serve(bundle) if via == "http" else self.publish_chunks(bundle)
        local = local_bundle(bundle)
        return {"command": "deploy", "source": source, "sha256": local.sha256, "size": local.size, **flags}

    def deploy(self, target: str, bundle: Path, *, via: str = "http", **flags: bool) -> str:
        """Make ``bundle`` fetchable and send ``target`` a signed deploy of it; its id.

        ``flags``: ``allow_downgrade``, ``allow_schema_change``.
        """
        return self.command(target, **self.deploy_body(bundle, via=via, **flags))

    def close(self) -> None:
        """Stop serving bundles; disconnect."""
        for server in self.servers.values():
            server.__exit__(None, None, None)
        self.servers.clear()
        self.client.loop_stop()
        self.client.disconnect()
