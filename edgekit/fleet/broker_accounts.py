"""Who may log in to the fleet's Mosquitto and what each may do: the accounts, the ACL, the broker's lines.

A device's MQTT user name is its device id, so the broker knows who speaks: a device may publish only under
``edgekit/F/ID/`` and read only its own commands, ``@all``'s, its groups' and the fleet's bundles
(:func:`acl_text`). :func:`broker_config` gives the ``mosquitto.conf`` lines that make the broker ask for the
accounts in ``mosquitto.passwd`` and apply ``mosquitto.acl``; :mod:`edgekit.fleet.provision` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigError
from edgekit_runtime.telemetry.mqtt import check_name

if TYPE_CHECKING:
    from pathlib import Path

PASSWD = "mosquitto.passwd"  # noqa: S105  (a file name)
ACL = "mosquitto.acl"
CONF = "mosquitto.conf"


@dataclass(frozen=True)
class Device:
    """A device's account: its id (the MQTT user name) and the groups it takes commands for."""

    id: str
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Check the names."""
        check_name("device", self.id)
        for group in self.groups:
            check_name("group", group)

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
        check_name("fleet", self.fleet)
        check_name("operator", self.operator)
        check_name("collector", self.collector)
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
    - the collector reads ``edgekit/F/+/telemetry``, ``…/+/state`` and ``…/+/events``, and publishes only
      ``edgekit/F/+/cmd``: the signed ``resend`` requests of its gap repair (the devices check the signature).

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
        "# The collector reads what it stores, and sends devices its signed requests for windows it misses.",
        f"user {accounts.collector}",
        f"topic deny {base}/{accounts.collector}/#",
        f"topic write {base}/+/cmd",
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
