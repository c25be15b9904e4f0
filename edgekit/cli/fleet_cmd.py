"""``edgekit fleet ...``: look after a fleet of devices. One function per command, each registered on ``fleet_app``.

``dashboard`` is here; the operator's commands (``devices``, ``deploy``, ``rollback``, ``set-config``, ``watch``) are
in :mod:`edgekit.cli.fleet_rollout_cmd`, registered below.

Exit codes: 0 done (``dashboard`` stopped by SIGTERM or Ctrl-C); 1 a database that cannot be opened or read;
2 bad options (a malformed database URL, a port that is taken).
"""

from __future__ import annotations

import typer

from edgekit.cli import fleet_provision_cmd, fleet_rollout_cmd
from edgekit.cli.output import err, labelled, stop_on_signals, user_errors
from edgekit.cli.telemetry_cmd import DB_HELP

fleet_app = typer.Typer(
    help="Look after a fleet of devices: see them, and what they run.", no_args_is_help=True, rich_markup_mode=None
)
fleet_app.command("devices")(fleet_rollout_cmd.devices_cmd)
fleet_app.command("deploy")(fleet_rollout_cmd.deploy)
fleet_app.command("rollback")(fleet_rollout_cmd.rollback)
fleet_app.command("set-config")(fleet_rollout_cmd.set_config)
fleet_app.command("watch")(fleet_rollout_cmd.watch)
fleet_app.command("provision")(fleet_provision_cmd.provision_cmd)


@fleet_app.command("dashboard")
def dashboard(
    db: str = typer.Option(..., help=DB_HELP),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; anything but loopback warns (no login)."),
    port: int = typer.Option(8765, help="TCP port to listen on."),
) -> None:
    """Serve a web page of the fleet: devices, latency and throughput over time, drift, rollouts."""
    with user_errors():
        from edgekit.fleet.dashboard import Dashboard, DashboardSettings
        from edgekit.telemetry.store import open_store

        settings = DashboardSettings(host=host, port=port)
        with open_store(db, create=False) as store:
            store.summary()  # a database that cannot be read fails now, not on the first page load
            with stop_on_signals() as stop, Dashboard(store, settings) as server:
                if not settings.loopback:
                    warning = (
                        f"--host {host} lets anyone who can reach this machine see the fleet: "
                        "the dashboard has no authentication"
                    )
                    err.print(labelled("warning:", "bold yellow", warning), soft_wrap=True)
                err.print(
                    f"serving the fleet dashboard of {store.where} at {server.url} (Ctrl-C to stop)", soft_wrap=True
                )
                while not stop.wait(0.5):
                    pass
