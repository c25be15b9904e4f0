"""``edgekit fleet provision``: one broker account per device, and the broker's password file and ACL.

The logic is :mod:`edgekit.fleet.provision`; this prints what was written and what to hand to whom.

Exit codes: 0 written; 1 a folder that cannot be written; 2 bad options (a name that cannot be a topic level,
a folder provisioned for another fleet, ``--rotate`` of an account that does not exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from edgekit.cli.output import out, user_errors

if TYPE_CHECKING:
    from edgekit.fleet.provision import Provisioned


def provision_cmd(
    folder: Path = typer.Argument(..., help="Where the broker's files and the passwords go; an earlier one is merged."),
    fleet: str = typer.Option(..., help="The fleet (a topic level)."),
    device: list[str] = typer.Option([], help="ID, or ID:GROUP,GROUP with the groups it takes commands for; repeat."),
    operator: str | None = typer.Option(None, help="The operator's user name [default: operator, or the folder's]."),
    collector: str | None = typer.Option(None, help="The collector's user name [default: collector, or the folder's]."),
    rotate: list[str] = typer.Option([], help="An account (device or role) that gets a new password; repeat."),
    remove: list[str] = typer.Option([], help="A device whose account goes; repeat."),
    port: int | None = typer.Option(None, help="The broker's listener port [default: 1883, or the folder's]."),
    bind: str | None = typer.Option(None, help="The address it listens on [default: every interface]."),
    broker_dir: Path | None = typer.Option(
        None, help="Where the broker will read mosquitto.passwd and mosquitto.acl [default: FOLDER]."
    ),
) -> None:
    """Give each device its own broker account, limited to its own topics; accounts for the operator and collector.

    Writes FOLDER/mosquitto.passwd, mosquitto.acl, mosquitto.conf (the broker's lines), accounts/NAME.password
    (mode 0600, one per account) and provision.json. Run it again on FOLDER to add devices: the others keep their
    passwords unless given to --rotate.
    """
    with user_errors():
        from edgekit.fleet.broker_accounts import Device
        from edgekit.fleet.provision import ProvisionRequest, provision

        request = ProvisionRequest(
            fleet=fleet,
            devices=tuple(Device.parse(text) for text in device),
            operator=operator,
            collector=collector,
            rotate=tuple(rotate),
            remove=tuple(remove),
            port=port,
            bind=bind,
            broker_dir=broker_dir,
        )
        result = provision(folder, request)
    for line in _lines(result):
        out.print(line, soft_wrap=True)


def _lines(result: Provisioned) -> list[str]:
    """A summary, the broker's step, and one line per account whose password is new: what to hand to whom."""
    accounts = result.accounts
    parts = [f"{len(result.created)} new", f"{len(result.rotated)} rotated", f"{len(result.kept)} kept"]
    if result.removed:
        parts.append(f"{len(result.removed)} removed ({', '.join(result.removed)})")
    host = "BROKER" + ("" if result.listener.port == 1883 else f":{result.listener.port}")  # noqa: PLR2004
    lines = [
        f"fleet {accounts.fleet}: {len(accounts.names)} accounts in {result.folder} ({', '.join(parts)})",
        f"broker: include {result.folder / 'mosquitto.conf'} in its configuration, then reload it (SIGHUP)",
    ]
    groups = {device.id: device.groups for device in accounts.devices}
    for name in (*result.created, *result.rotated):
        secret = result.password_file(name)
        if name == accounts.operator:
            lines.append(
                f"{name}: edgekit fleet deploy|rollback|set-config|watch --fleet {accounts.fleet}"
                f' --broker "mqtt://{name}:$(cat {secret})@{host}"'
            )
        elif name == accounts.collector:
            lines.append(
                f"{name}: edgekit telemetry collect --broker mqtt://{host} --fleet {accounts.fleet}"
                f" --username {name} --password-file {secret}"
            )
        else:
            flags = "".join(f" --group {group}" for group in groups[name])
            lines.append(
                f"{name}: copy {secret} to the device; edgekit-runtime serve … --mqtt mqtt://{host}"
                f" --fleet {accounts.fleet} --device {name}{flags} --mqtt-username {name} --mqtt-password-file FILE"
            )
    return lines
