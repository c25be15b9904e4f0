"""One identity per device on the fleet's Mosquitto: accounts, a password file and an ACL (issue 17).

``edgekit fleet provision FOLDER --fleet F --device ID[:GROUP,...] ...`` writes into ``FOLDER``:

- ``mosquitto.passwd`` (mode 0600): each account's Mosquitto 2 password hash
  (:class:`~edgekit.fleet.broker_passwords.PasswordHash`);
- ``accounts/NAME.password`` (mode 0600): each account's password, to hand to that device (``edgekit-runtime
  serve --mqtt-username ID --mqtt-password-file FILE``), the operator or the collector;
- ``mosquitto.acl``: what each account may publish and read (:func:`~edgekit.fleet.broker_accounts.acl_text`);
- ``mosquitto.conf``: the broker's lines that use them (:func:`~edgekit.fleet.broker_accounts.broker_config`);
- ``provision.json``: the fleet, its accounts and the devices' groups, which the next run reads back.

Running the command again on the same folder merges: new devices get an account, devices given again get the
groups given now, every existing account keeps its password unless named by ``--rotate`` (``--remove`` drops
one); the ACL and the configuration are written anew each time, the broker reads them again on SIGHUP. Each
file is written crash-safely (a temporary file renamed over the old one), ``provision.json`` last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError, FleetError
from edgekit.fleet.broker_accounts import ACL, CONF, PASSWD, Device, FleetAccounts, Listener, acl_text, broker_config
from edgekit.fleet.broker_passwords import PasswordHash, new_password
from edgekit_runtime.fleet.models import write_atomically
from edgekit_runtime.telemetry.mqtt import check_name

PROVISION_SCHEMA = "edgekit.provision/1"
PLAN = "provision.json"
ACCOUNTS = "accounts"


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
        check_name("fleet", self.fleet)
        if self.operator is not None and self.operator == self.collector:
            raise ConfigError(f"--operator and --collector are both '{self.operator}': give each its own name")
        for flag, names in (("rotate", self.rotate), ("remove", self.remove)):
            for name in names:
                check_name(flag, name)
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
