"""One identity per device on the fleet's Mosquitto: accounts, a password file and an ACL (issue 17).

``edgekit fleet provision FOLDER --fleet F --device ID[:GROUP,...] ...`` writes into ``FOLDER``:

- ``mosquitto.passwd`` (mode 0600): each account's Mosquitto 2 password hash (:class:`PasswordHash`);
- ``accounts/NAME.password`` (mode 0600): each account's password, to hand to that device (``edgekit-runtime
  serve --mqtt-username ID --mqtt-password-file FILE``), the operator or the collector;
- ``mosquitto.acl``: what each account may publish and read (:func:`acl_text`);
- ``mosquitto.conf``: the broker's lines that use them (:func:`broker_config`);
- ``provision.json``: the fleet, its accounts and the devices' groups, which the next run reads back.

A device's MQTT user name is its device id, so the broker knows who speaks: a device may publish only under
``edgekit/F/ID/`` and read only its own commands, ``@all``'s, its groups' and the fleet's bundles. Running the
command again on the same folder merges: new devices get an account, devices given again get the groups given
now, every existing account keeps its password unless named by ``--rotate`` (``--remove`` drops one); the
ACL and the configuration are written anew each time, the broker reads them again on SIGHUP. Each file is
written crash-safely (a temporary file renamed over the old one), ``provision.json`` last.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError, FleetError
from edgekit_runtime.errors import ConfigError as RuntimeConfigError
from edgekit_runtime.fleet.models import write_atomically
from edgekit_runtime.telemetry.mqtt import check_name

#: PBKDF2 rounds: ``mosquitto_passwd``'s own (2.0). The passwords made here are 256 random bits, which no
#: number of rounds makes stronger or weaker; a password brought in by hand gets the same.
HASH_ITERATIONS = 101
#: salt bytes, as ``mosquitto_passwd`` 2.0 makes them (later brokers read 12 and 64)
SALT_BYTES = 12
#: SHA-512's digest size, the only one Mosquitto reads
DIGEST_BYTES = 64
PROVISION_SCHEMA = "edgekit.provision/1"
PASSWD = "mosquitto.passwd"  # noqa: S105  (a file name)
ACL = "mosquitto.acl"
CONF = "mosquitto.conf"
PLAN = "provision.json"
ACCOUNTS = "accounts"


def new_password() -> str:
    """256 random bits as 43 characters of ``A-Z a-z 0-9 - _`` (safe in a broker URL as they are)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class PasswordHash:
    """A Mosquitto 2 password hash: ``$7$ITERATIONS$SALT$DIGEST``, PBKDF2-HMAC-SHA512, both parts in base64.

    What ``mosquitto_passwd`` (2.0, ``-H sha512-pbkdf2``, its default) writes and every Mosquitto 2 reads.
    """

    iterations: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    @classmethod
    def of(cls, password: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> PasswordHash:
        """The hash of ``password``, with a new random salt unless one is given."""
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        return cls(iterations, salt, _pbkdf2(password, salt, iterations))

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Read ``$7$…`` (the part after ``user:`` in a password file)."""
        parts = text.split("$")
        salt = digest = b""
        if len(parts) == 5 and parts[:2] == ["", "7"] and parts[2].isdigit():  # noqa: PLR2004
            try:
                salt = base64.b64decode(parts[3], validate=True)
                digest = base64.b64decode(parts[4], validate=True)
            except binascii.Error:
                salt = b""
        if not salt or len(digest) != DIGEST_BYTES or int(parts[2]) < 1:
            raise ConfigError(f"'{text[:24]}…' is not a Mosquitto $7$ hash: give $7$ROUNDS$SALT$DIGEST, in base64")
        return cls(int(parts[2]), salt, digest)

    def matches(self, password: str) -> bool:
        """Whether ``password`` is the one hashed (compared in constant time)."""
        return hmac.compare_digest(self.digest, _pbkdf2(password, self.salt, self.iterations))

    def __str__(self) -> str:
        """As a password file holds it."""
        salt, digest = (base64.b64encode(part).decode() for part in (self.salt, self.digest))
        return f"$7${self.iterations}${salt}${digest}"


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, DIGEST_BYTES)


def _name(flag: str, value: str) -> str:
    """``value`` when it can be a topic level (and so a user name in the ACL), else one line naming ``--flag``."""
    try:
        return check_name(flag, value)
    except RuntimeConfigError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Device:
    """A device's account: its id (the MQTT user name) and the groups it takes commands for."""

    id: str
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Check the names."""
        _name("device", self.id)
        for group in self.groups:
            _name("group", group)

    @classmethod
    def parse(cls, text: str) -> Device:
        """``--device ID`` or ``--device ID:GROUP,GROUP``."""
        device, _, groups = text.partition(":")
        names = [group.strip() for group in groups.split(",") if group.strip()]
        if ":" in text and not names:
            raise ConfigError(f"--device '{text}' names no group after ':': write ID or ID:GROUP,GROUP")
        return cls(device.strip(), tuple(sorted(set(names))))


@dataclass(frozen=True)
class FleetAccounts:
    """Who may log in to the fleet's broker: each device (user name = device id), the operator, the collector."""

    fleet: str
    operator: str = "operator"
    collector: str = "collector"
    devices: tuple[Device, ...] = ()

    def __post_init__(self) -> None:
        """Check the names, and that no two accounts share one."""
        _name("fleet", self.fleet)
        _name("operator", self.operator)
        _name("collector", self.collector)
        if self.operator == self.collector:
            raise ConfigError(f"--operator and --collector are both '{self.operator}': give each its own name")
        seen: set[str] = set()
        for device in self.devices:
            if device.id in (self.operator, self.collector):
                role = "operator" if device.id == self.operator else "collector"
                raise ConfigError(f"--device {device.id} is the {role}'s account: give the device another id")
            if device.id in seen:
                raise ConfigError(f"--device {device.id} is given twice: give each device once")
            seen.add(device.id)

    @property
    def names(self) -> tuple[str, ...]:
        """Every account: the operator, the collector, then the devices in order."""
        return (self.operator, self.collector, *(device.id for device in self.devices))

    def to_json(self) -> dict[str, Any]:
        """As ``provision.json`` keeps it (without the broker's settings)."""
        return {
            "fleet": self.fleet,
            "operator": self.operator,
            "collector": self.collector,
            "devices": {device.id: list(device.groups) for device in self.devices},
        }


def acl_text(accounts: FleetAccounts) -> str:
    """The Mosquitto ACL: who may publish (write) and read what, every other topic denied.

    - a device ``D`` publishes ``edgekit/F/D/telemetry``, ``…/D/state`` (its Last Will too) and ``…/D/events``, and
      reads ``edgekit/F/D/cmd``, ``edgekit/F/@all/cmd``, ``edgekit/F/@G/cmd`` for each of its groups ``G`` and
      ``edgekit/F/@bundles/#``;
    - the operator publishes ``edgekit/F/+/cmd`` (a device, ``@all``, ``@G``) and ``edgekit/F/@bundles/#``, and
      reads ``edgekit/F/+/state`` and ``edgekit/F/+/events``;
    - the collector publishes nothing, and reads ``edgekit/F/+/telemetry``, ``…/+/state`` and ``…/+/events``.

    A device's own topics are ``pattern`` lines (``%u``: the user name, which is the device id); the topics every
    device reads, ``@all``, its groups and the bundles, are ``topic`` lines in its ``user`` block (Mosquitto warns
    about a pattern without ``%u``). Mosquitto applies patterns to every account, so the operator's and the
    collector's blocks deny ``edgekit/F/NAME/#`` for their own name (a deny wins over any allow), and no device may
    take either name.
    """
    fleet = accounts.fleet
    base = f"edgekit/{fleet}"
    lines = [
        f"# edgekit fleet '{fleet}': who may publish and read what (written by edgekit fleet provision: run it",
        "# again rather than edit this file). Whatever no line allows is denied.",
        "",
        "# Every device (%u: the MQTT user name, which is the device id) publishes its own telemetry windows,",
        "# retained state (its Last Will goes to the same topic) and command events, and reads its commands.",
        f"pattern write {base}/%u/telemetry",
        f"pattern write {base}/%u/state",
        f"pattern write {base}/%u/events",
        f"pattern read {base}/%u/cmd",
        "",
        "# Each device also reads the commands to the whole fleet and to its groups, and the bundles published",
        "# over MQTT.",
    ]
    for device in accounts.devices:
        lines += [
            f"user {device.id}",
            f"topic read {base}/@all/cmd",
            *(f"topic read {base}/@{group}/cmd" for group in device.groups),
            f"topic read {base}/@bundles/#",
        ]
    lines += [
        "",
        "# The operator commands devices, @all and groups, publishes (and clears) bundles, and reads the devices'",
        "# states and events; the patterns above do not make it a device.",
        f"user {accounts.operator}",
        f"topic deny {base}/{accounts.operator}/#",
        f"topic write {base}/+/cmd",
        f"topic write {base}/@bundles/#",
        f"topic read {base}/+/state",
        f"topic read {base}/+/events",
        "",
        "# The collector reads what it stores, and publishes nothing.",
        f"user {accounts.collector}",
        f"topic deny {base}/{accounts.collector}/#",
        f"topic read {base}/+/telemetry",
        f"topic read {base}/+/state",
        f"topic read {base}/+/events",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Listener:
    """Where the broker listens, and the folder it reads the provisioned files from."""

    port: int = 1883
    #: the address to listen on (``None``: every interface)
    bind: str | None = None
    #: where the broker finds ``mosquitto.passwd`` and ``mosquitto.acl`` (``None``: the output folder)
    broker_dir: Path | None = None

    def __post_init__(self) -> None:
        """Refuse what Mosquitto's configuration cannot say."""
        if not 1 <= self.port <= 65535:  # noqa: PLR2004
            raise ConfigError(f"--port {self.port} is not a TCP port: use 1 to 65535")
        if self.bind is not None and (not self.bind or any(c.isspace() for c in self.bind)):
            raise ConfigError(f"--bind '{self.bind}' is not an address: give one host name or IP address")
        if self.broker_dir is not None and not self.broker_dir.is_absolute():
            raise ConfigError(f"--broker-dir {self.broker_dir} is relative: give the broker's absolute path")

    def to_json(self) -> dict[str, Any]:
        """As ``provision.json`` keeps it."""
        return {
            "port": self.port,
            "bind": self.bind,
            "broker_dir": None if self.broker_dir is None else str(self.broker_dir),
        }


def broker_config(fleet: str, listener: Listener, folder: Path) -> str:
    """The lines of ``mosquitto.conf`` that make the broker ask for the provisioned accounts and apply the ACL."""
    where = listener.broker_dir or folder.resolve()
    if any(c.isspace() for c in str(where)):
        raise ConfigError(f"{where} has a space, which Mosquitto's configuration cannot hold: use --broker-dir")
    bind = f" {listener.bind}" if listener.bind else ""
    return (
        "\n".join(
            [
                f"# edgekit fleet '{fleet}': one identity per device (written by edgekit fleet provision).",
                "# Include it in the broker's configuration (include_dir, or paste it in); with per_listener_settings",
                "# true the three lines after the listener belong under it. After each provision, kill -HUP the broker",
                "# (or systemctl reload mosquitto) to read the password file and the ACL again.",
                f"listener {listener.port}{bind}",
                "allow_anonymous false",
                f"password_file {where / PASSWD}",
                f"acl_file {where / ACL}",
                "",
                "# TLS: without it, passwords and telemetry cross the network in the clear. To enable it, replace the",
                "# listener line above with these (devices: --mqtt mqtts://HOST --mqtt-ca ca.pem; edgekit: --broker",
                "# mqtts://HOST --ca ca.pem):",
                f"#listener 8883{bind}",
                "#certfile /etc/mosquitto/certs/broker.pem",
                "#keyfile /etc/mosquitto/certs/broker.key",
                "# and, to also ask every client for a certificate signed by your CA:",
                "#cafile /etc/mosquitto/certs/ca.pem",
                "#require_certificate true",
            ]
        )
        + "\n"
    )


@dataclass(frozen=True)
class ProvisionRequest:
    """What one run of ``edgekit fleet provision`` asks for; ``None``: as the folder has it (or the default)."""

    fleet: str
    #: devices to add, or to give new groups
    devices: tuple[Device, ...] = ()
    operator: str | None = None
    collector: str | None = None
    #: accounts that get a new password
    rotate: tuple[str, ...] = ()
    #: devices whose accounts go
    remove: tuple[str, ...] = ()
    port: int | None = None
    bind: str | None = None
    broker_dir: Path | None = None

    def __post_init__(self) -> None:
        """Check the names, and requests that contradict each other."""
        _name("fleet", self.fleet)
        if self.operator is not None and self.operator == self.collector:
            raise ConfigError(f"--operator and --collector are both '{self.operator}': give each its own name")
        for flag, names in (("rotate", self.rotate), ("remove", self.remove)):
            for name in names:
                _name(flag, name)
        both = sorted(set(self.remove) & ({device.id for device in self.devices} | set(self.rotate)))
        if both:
            raise ConfigError(f"--remove {both[0]} is also given to --device or --rotate: give one of them")


@dataclass(frozen=True)
class Provisioned:
    """What a run wrote."""

    folder: Path
    accounts: FleetAccounts
    listener: Listener
    #: accounts made now (a new password)
    created: tuple[str, ...]
    #: accounts given a new password (``--rotate``)
    rotated: tuple[str, ...]
    #: accounts dropped (``--remove``)
    removed: tuple[str, ...]

    @property
    def kept(self) -> tuple[str, ...]:
        """Accounts whose password did not change."""
        return tuple(name for name in self.accounts.names if name not in (*self.created, *self.rotated))

    def password_file(self, name: str) -> Path:
        """The file holding ``name``'s password."""
        return self.folder / ACCOUNTS / f"{name}.password"


def provision(folder: Path, request: ProvisionRequest) -> Provisioned:
    """Write (or merge into) ``folder`` the accounts, password file, ACL and broker lines for ``request``."""
    try:
        return _provision(folder, request)
    except OSError as exc:
        where = exc.filename or folder
        raise FleetError(f"{where} cannot be written ({exc.strerror or exc}): give a folder you can write") from exc


def _provision(folder: Path, request: ProvisionRequest) -> Provisioned:
    previous, listener_before = _read_plan(folder, request.fleet)
    accounts, listener = _merge(previous, listener_before, request)
    unknown = sorted(set(request.rotate) - set(accounts.names))
    if unknown:
        raise ConfigError(f"--rotate {unknown[0]} has no account in {folder}: give a provisioned device or role")
    hashes = _read_hashes(folder, previous)
    acl, conf = acl_text(accounts), broker_config(accounts.fleet, listener, folder)  # before anything is written
    accounts_dir = folder / ACCOUNTS
    accounts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created: list[str] = []
    rotated: list[str] = []
    lines: list[str] = []
    for name in accounts.names:
        secret = accounts_dir / f"{name}.password"
        # a password file without its hash: a run cut off before mosquitto.passwd, or a password chosen by hand
        brought = secret.read_text(encoding="utf-8").strip() if name not in hashes and secret.exists() else ""
        if brought and name not in request.rotate:
            hashes[name] = str(PasswordHash.of(brought))
        elif name in request.rotate or name not in hashes:
            (rotated if name in hashes else created).append(name)
            password = new_password()
            write_atomically(secret, [f"{password}\n".encode()])  # mkstemp's mode: 0600
            hashes[name] = str(PasswordHash.of(password))
        lines.append(f"{name}:{hashes[name]}\n")
    removed = tuple(name for name in (previous.names if previous else ()) if name not in accounts.names)
    write_atomically(folder / PASSWD, ["".join(lines).encode()])
    _write_public(folder / ACL, acl)
    _write_public(folder / CONF, conf)
    plan = {"schema": PROVISION_SCHEMA, **accounts.to_json(), "listener": listener.to_json()}
    _write_public(folder / PLAN, json.dumps(plan, indent=1) + "\n")
    for name in removed:
        (accounts_dir / f"{name}.password").unlink(missing_ok=True)
    return Provisioned(folder, accounts, listener, tuple(created), tuple(rotated), removed)


def _write_public(path: Path, text: str) -> None:
    write_atomically(path, [text.encode()])
    path.chmod(0o644)


def _read_plan(folder: Path, fleet: str) -> tuple[FleetAccounts | None, Listener]:
    """The accounts and listener ``folder`` was provisioned with, or ``None`` for a new (or empty) folder."""
    path = folder / PLAN
    if not path.exists():
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} is a file: give a folder for the broker's files")
        if folder.exists() and any(folder.iterdir()):
            raise ConfigError(f"{folder} holds files but no {PLAN}: give a new or empty folder")
        return None, Listener()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("schema") != PROVISION_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}")  # noqa: TRY301
        devices = tuple(Device(name, tuple(groups)) for name, groups in doc["devices"].items())
        accounts = FleetAccounts(doc["fleet"], doc["operator"], doc["collector"], devices)
        raw = doc.get("listener") or {}
        broker_dir = raw.get("broker_dir")
        listener = Listener(raw.get("port", 1883), raw.get("bind"), None if broker_dir is None else Path(broker_dir))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}): restore it, or provision into a new folder") from None
    if accounts.fleet != fleet:
        raise ConfigError(
            f"{folder} provisions fleet '{accounts.fleet}', not '{fleet}': give --fleet {accounts.fleet}, "
            "or another folder"
        )
    return accounts, listener


def _merge(
    previous: FleetAccounts | None, listener: Listener, request: ProvisionRequest
) -> tuple[FleetAccounts, Listener]:
    """The accounts after ``request``: devices added or regrouped, removed ones gone, roles as they were."""
    devices = {device.id: device for device in (previous.devices if previous else ())}
    for device_id in request.remove:
        if device_id not in devices:
            raise ConfigError(f"--remove {device_id} is not a provisioned device: give one of the folder's devices")
        del devices[device_id]
    new_ids = [device.id for device in request.devices]
    twice = sorted({device_id for device_id in new_ids if new_ids.count(device_id) > 1})
    if twice:
        raise ConfigError(f"--device {twice[0]} is given twice: give each device once, with all its groups")
    devices.update({device.id: device for device in request.devices})
    roles = {}
    for role, asked in (("operator", request.operator), ("collector", request.collector)):
        before = getattr(previous, role) if previous else None
        if before is not None and asked is not None and asked != before:
            raise ConfigError(
                f"--{role} {asked}: this folder's {role} is '{before}': give --{role} {before}, or another folder"
            )
        roles[role] = asked or before or role
    accounts = FleetAccounts(
        request.fleet, roles["operator"], roles["collector"], tuple(devices[key] for key in sorted(devices))
    )
    changes: dict[str, Any] = {
        key: value
        for key, value in (("port", request.port), ("bind", request.bind), ("broker_dir", request.broker_dir))
        if value is not None
    }
    return accounts, replace(listener, **changes)


def _read_hashes(folder: Path, previous: FleetAccounts | None) -> dict[str, str]:
    """``mosquitto.passwd``'s hashes by account, each as written (a hash set by hand with mosquitto_passwd too)."""
    path = folder / PASSWD
    if previous is None or not path.exists():
        return {}
    hashes = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon or not value:
            raise ConfigError(f"{path} line {number} is not USER:HASH: fix it, or --rotate that account")
        if name not in previous.names:
            raise ConfigError(
                f"{path} has an account '{name}' that {PLAN} does not: remove its line, or add it with --device"
            )
        hashes[name] = value
    return hashes
