"""``edgekit fleet devices|deploy|rollback|set-config|watch``: the operator's commands (on ``fleet_app``).

Every command a device runs is signed with ``--sign-key`` (or ``$EDGEKIT_SIGN_KEY``): the private key of
``edgekit keygen`` whose ``.pub`` the devices trust (``edgekit-runtime serve --trust``).

Exit codes: 0 done; 1 a broker that cannot be reached, devices that did not all commit or roll back (or refused
a set-config), a database that cannot be read; 2 bad options (a broker URL, ``--canary 150%``, ``--abort-if`` that
does not parse, a ``KEY=VALUE`` without ``=``); 5 a rollout its canary stopped (the canary devices that had
committed were rolled back).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from edgekit.cli.output import err, out, user_errors
from edgekit.cli.telemetry_cmd import DB_HELP, P99_HELP
from edgekit.telemetry.latency import P99_MINUTES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgekit.fleet.link import FleetLink
    from edgekit.fleet.rollout import RolloutResult
    from edgekit.telemetry.collector import CollectorSettings

BROKER = typer.Option(..., help="mqtt://[USER:PASSWORD@]HOST[:PORT], or mqtts:// for TLS.")
FLEET = typer.Option(..., help="The fleet (a topic level).")
DEVICES = typer.Option(None, help="Comma-separated device ids (default: every online device, from retained states).")
GROUP = typer.Option(None, help="Only the online devices started with --group GROUP.")
CA = typer.Option(None, help="CA bundle to check the broker's certificate (mqtts).")
CERT = typer.Option(None, help="Client certificate (mqtts).")
KEY = typer.Option(None, help="Client certificate's private key (mqtts).")
USERNAME = typer.Option(None, help="Broker user name (edgekit fleet provision's operator).")
PASSWORD_FILE = typer.Option(None, help="File holding the broker password (kept out of the URL and the process list).")
JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
SIGN_KEY = typer.Option(
    None,
    "--sign-key",
    envvar="EDGEKIT_SIGN_KEY",
    help="The fleet owner's private key (.key of edgekit keygen) that signs the commands; the devices trust its .pub.",
)


def _sign_key(path: Path | None) -> Ed25519PrivateKey:
    from edgekit.bundle.signing import load_private_key
    from edgekit.errors import ConfigError

    if path is None:
        raise ConfigError(
            "fleet commands are signed: give --sign-key KEY (or set EDGEKIT_SIGN_KEY), the .key of edgekit keygen "
            "whose .pub the devices trust"
        )
    return load_private_key(path)


def _settings(
    broker: str,
    fleet: str,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    username: str | None = None,
    password_file: Path | None = None,
) -> CollectorSettings:
    from edgekit.cli.telemetry_cmd import read_password
    from edgekit.telemetry.collector import CollectorSettings

    return CollectorSettings(
        broker=broker,
        fleet=fleet,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        username=username,
        password=read_password(password_file),
    )


def _targets(link: FleetLink, devices: str | None, group: str | None) -> list[str]:
    from edgekit.errors import ConfigError
    from edgekit.fleet.rollout import find_targets
    from edgekit.fleet.rules import parse_devices

    if devices and group:
        raise ConfigError("--devices and --group both choose devices: give one of them")
    return find_targets(link, devices=parse_devices(devices) if devices else None, group=group)


@contextlib.contextmanager
def _live(enabled: bool) -> Iterator[Callable[[RolloutResult], None]]:
    """A function that redraws the rollout's table on stderr (when it is a terminal)."""
    if not enabled or not err.is_terminal:
        yield lambda _r: None
        return
    from rich.live import Live

    from edgekit.cli.fleet_view import rollout_table

    with Live(console=err, refresh_per_second=8, transient=True) as live:
        yield lambda result: live.update(rollout_table(result))


def _report(result: RolloutResult, as_json: bool) -> None:
    from edgekit.cli.fleet_view import rollout_table, summary_line
    from edgekit.errors import FleetError, RolloutAbortedError

    if as_json:
        out.print_json(json.dumps(result.to_json()))
    else:
        out.print(rollout_table(result))
        out.print(summary_line(result))
    if result.outcome == "aborted":
        raise RolloutAbortedError(
            f"rollout {result.id} aborted: {result.reason}", rollout_id=result.id, devices=tuple(result.canary)
        )
    if result.outcome != "completed":
        raise FleetError(f"{result.command} {result.id}: {result.reason}")


def deploy(
    bundle: Path = typer.Argument(..., help="The .edgebundle to roll out."),
    broker: str = BROKER,
    fleet: str = FLEET,
    devices: str | None = DEVICES,
    group: str | None = GROUP,
    canary: str = typer.Option("10%", help="Share of the devices that get it first: ceil(share x N), at least 1."),
    abort_if: str | None = typer.Option(
        None, help='Stop when the canary shows e.g. "error_rate>0.05 or p99_ms>40" (needs --db).'
    ),
    bake: float = typer.Option(30.0, help="Seconds the committed canary is watched before --abort-if is judged."),
    url: str | None = typer.Option(None, help="Where devices fetch the bundle (already hosted there)."),
    serve: str | None = typer.Option(
        None, help="HOST:PORT: serve the bundle over HTTP from here during the rollout (HOST: as devices reach it)."
    ),
    allow_downgrade: bool = typer.Option(
        False, "--allow-downgrade", help="Let devices install an older version than they serve (refused otherwise)."
    ),
    allow_schema_change: bool = typer.Option(
        False,
        "--allow-schema-change",
        help="Let devices install a model whose inputs differ from the serving one's (refused otherwise).",
    ),
    sign_key: Path | None = SIGN_KEY,
    chunk_kib: int = typer.Option(256, help="Chunk size when the bundle goes over MQTT (the default way)."),
    timeout: float = typer.Option(300.0, help="Seconds each stage (canary, rest) may take."),
    db: str | None = typer.Option(None, help=f"The collector's database, for --abort-if. {DB_HELP}"),
    ca: Path | None = CA,
    cert: Path | None = CERT,
    key: Path | None = KEY,
    username: str | None = USERNAME,
    password_file: Path | None = PASSWORD_FILE,
    as_json: bool = JSON,
) -> None:
    """Roll a bundle out to the canary, judge it, then to the rest; roll the canary back if it fails.

    By default the bundle goes over the broker: retained chunks with a hash each, which devices fetch (and resume)
    over their MQTT connection and which are cleared when the rollout ends. --url and --serve send devices to an
    HTTP server for it.
    """
    with user_errors():
        from edgekit.errors import ConfigError
        from edgekit.fleet.bundle_mqtt import PublishedBundle, chunk_bytes
        from edgekit.fleet.bundle_source import BundleServer, check_bundle, parse_serve
        from edgekit.fleet.link import FleetLink
        from edgekit.fleet.rollout import DeployPlan, store_metrics
        from edgekit.fleet.rollout import deploy as run_deploy
        from edgekit.fleet.rules import parse_abort_if, parse_canary
        from edgekit.telemetry.store import open_store

        fraction = parse_canary(canary)
        rule = parse_abort_if(abort_if) if abort_if is not None else None
        if rule is not None and db is None:
            raise ConfigError("--abort-if reads the canary's telemetry: give --db, the collector's database")
        if url is not None and serve is not None:
            raise ConfigError("--url and --serve each say where the bundle comes from: give one")
        chunk_size = chunk_bytes(chunk_kib)
        if timeout <= 0 or bake < 0:
            raise ConfigError("--timeout must be more than 0 seconds and --bake 0 or more")
        settings = _settings(broker, fleet, ca, cert, key, username, password_file)
        signer = _sign_key(sign_key)
        local = check_bundle(bundle)
        with contextlib.ExitStack() as stack:
            store = open_store(db, create=False) if db is not None else None
            if store is not None:
                stack.callback(store.close)
            source = url
            if serve is not None:
                source = stack.enter_context(BundleServer(local, *parse_serve(serve))).url
            link = stack.enter_context(FleetLink(settings, sign_key=signer))
            targets = _targets(link, devices, group)
            if source is None:  # the default: over the broker
                source = stack.enter_context(PublishedBundle(link, local, chunk_size))
            plan = DeployPlan(
                source,
                local.sha256,
                targets,
                fraction,
                timeout,
                rule,
                bake,
                size=local.size,
                allow_downgrade=allow_downgrade,
                allow_schema_change=allow_schema_change,
            )
            metrics = store_metrics(store, fleet) if store is not None else None
            with _live(not as_json) as show:
                result = run_deploy(link, plan, metrics=metrics, on_change=show)
        result.bundle = local.to_json()
        _report(result, as_json)


def rollback(
    broker: str = BROKER,
    fleet: str = FLEET,
    devices: str | None = DEVICES,
    group: str | None = GROUP,
    timeout: float = typer.Option(120.0, help="Seconds to wait for the devices' results."),
    sign_key: Path | None = SIGN_KEY,
    ca: Path | None = CA,
    cert: Path | None = CERT,
    key: Path | None = KEY,
    username: str | None = USERNAME,
    password_file: Path | None = PASSWORD_FILE,
    as_json: bool = JSON,
) -> None:
    """Serve the previous committed model again on the devices, and wait for their results."""
    with user_errors():
        from edgekit.fleet.link import FleetLink
        from edgekit.fleet.rollout import rollback as run_rollback

        settings, signer = _settings(broker, fleet, ca, cert, key, username, password_file), _sign_key(sign_key)
        with FleetLink(settings, sign_key=signer) as link:
            targets = _targets(link, devices, group)
            with _live(not as_json) as show:
                result = run_rollback(link, targets, timeout=timeout, on_change=show)
        _report(result, as_json)


def set_config(
    pairs: list[str] = typer.Argument(
        ...,
        metavar="KEY=VALUE",
        help="Settings, each VALUE a JSON scalar or a bare word: deploy_watch, max_error_rate, max_latency_ratio, "
        "min_requests, telemetry_interval, log_level (docs/fleet.md).",
    ),
    broker: str = BROKER,
    fleet: str = FLEET,
    devices: str | None = DEVICES,
    group: str | None = GROUP,
    timeout: float = typer.Option(60.0, help="Seconds to wait for the devices' answers."),
    sign_key: Path | None = SIGN_KEY,
    ca: Path | None = CA,
    cert: Path | None = CERT,
    key: Path | None = KEY,
    username: str | None = USERNAME,
    password_file: Path | None = PASSWORD_FILE,
    as_json: bool = JSON,
) -> None:
    """Change settings on the devices at once (kept across restarts); each takes all of them or refuses all."""
    with user_errors():
        from edgekit.errors import ConfigError
        from edgekit.fleet.link import FleetLink
        from edgekit.fleet.rollout import set_config as run_set_config
        from edgekit.fleet.rules import parse_settings

        values = parse_settings(pairs)
        if timeout <= 0:
            raise ConfigError("--timeout must be more than 0 seconds")
        settings, signer = _settings(broker, fleet, ca, cert, key, username, password_file), _sign_key(sign_key)
        with FleetLink(settings, sign_key=signer) as link:
            targets = _targets(link, devices, group)
            with _live(not as_json) as show:
                result = run_set_config(link, targets, values, timeout=timeout, on_change=show)
        _report(result, as_json)


def watch(
    broker: str = BROKER,
    fleet: str = FLEET,
    once: bool = typer.Option(False, "--once", help="Print the retained states once and stop."),
    duration: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    ca: Path | None = CA,
    cert: Path | None = CERT,
    key: Path | None = KEY,
    username: str | None = USERNAME,
    password_file: Path | None = PASSWORD_FILE,
    as_json: bool = typer.Option(False, "--json", help="Print each message as a JSON line instead of a table."),
) -> None:
    """Show the fleet's states and command steps live, until Ctrl-C (or --once, --duration)."""
    with user_errors():
        from rich.live import Live

        from edgekit.cli.fleet_view import WatchView
        from edgekit.fleet.link import FleetLink

        view = WatchView(fleet)
        end = time.monotonic() + (1.0 if once else duration if duration is not None else float("inf"))
        with FleetLink(_settings(broker, fleet, ca, cert, key, username, password_file)) as link:
            live = Live(view.table(), console=out, refresh_per_second=4, auto_refresh=False)
            with contextlib.suppress(KeyboardInterrupt), live if not as_json else contextlib.nullcontext():
                while (left := end - time.monotonic()) > 0:
                    message = link.next_message(min(left, 0.5))
                    if message is None:
                        continue
                    if as_json:
                        doc = {"kind": message.kind, "device": message.device, **message.doc}
                        out.print(json.dumps(doc), soft_wrap=True)
                    else:
                        view.take(message)
                        live.update(view.table(), refresh=True)


def devices_cmd(
    db: str = typer.Option(..., help=DB_HELP),
    fleet: str | None = typer.Option(None, help="Only this fleet's devices."),
    p99_minutes: int = typer.Option(P99_MINUTES, min=1, help=P99_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the devices the collector knows: online, model, last seen, recent p99, error rate, drift."""
    with user_errors():
        from edgekit.cli.fleet_view import devices_table
        from edgekit.telemetry.store import open_store

        with open_store(db, create=False) as store:
            rows = [row for row in store.summary(p99_minutes=p99_minutes) if fleet is None or row.fleet == fleet]
        if as_json:
            out.print_json(json.dumps([row.to_json() for row in rows]))
        else:
            out.print(devices_table(rows, p99_minutes=p99_minutes))
