"""``edgekit telemetry collect|show``: store the fleet's telemetry from MQTT, and look at what was stored.

Exit codes: 0 done (``collect`` stopped by SIGTERM or Ctrl-C); 1 a database that cannot be opened or read;
2 bad options (a malformed broker or database URL, a missing file). A broker that cannot be reached is not an
error: ``collect`` keeps trying, with a log line each time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from edgekit.cli.output import err, out, stop_on_signals, user_errors
from edgekit.errors import ConfigError, TelemetryError
from edgekit.telemetry.latency import P99_MINUTES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgekit.telemetry.store import DeviceSummary

telemetry_app = typer.Typer(
    help="Collect device telemetry from an MQTT broker, and look at it.", no_args_is_help=True, rich_markup_mode=None
)

DB_HELP = "A SQLite file (or sqlite:///PATH), or postgresql://USER@HOST:PORT/DB."
P99_HELP = (
    "Minutes of each device's windows, up to its newest one, that the p99 column covers: their latency histograms"
    " merged, the p99 interpolated within its bucket; idle: no requests then."
)


@telemetry_app.command("collect")
def collect(
    broker: str = typer.Option(..., help="mqtt://HOST[:PORT], or mqtts://HOST[:PORT] for TLS."),
    db: str = typer.Option("telemetry.db", help=DB_HELP),
    fleet: str = typer.Option("+", help="The fleet to collect; + for all."),
    share: str | None = typer.Option(None, help="Shared-subscription group: collectors in it split the load."),
    client_id: str | None = typer.Option(
        None,
        help="MQTT client id [default: derived from --db, --fleet and --share, so a restart resumes the session].",
    ),
    session_expiry: int | None = typer.Option(
        None,
        help="Seconds the broker keeps the session (and queues telemetry) while the collector is away"
        " [default: 86400].",
        show_default=False,
    ),
    sign_key: Path | None = typer.Option(
        None,
        "--sign-key",
        envvar="EDGEKIT_SIGN_KEY",
        help="The fleet's private key (edgekit keygen): signs the requests that ask devices for missing windows; "
        "without it gaps are only logged.",
    ),
    repair: bool | None = typer.Option(
        None,
        "--repair/--no-repair",
        help="Ask devices for the windows missing in what is stored [default: on; off with --share, whose collectors"
        " may store into separate databases].",
        show_default=False,
    ),
    username: str | None = typer.Option(None, help="Broker user name."),
    password_file: Path | None = typer.Option(None, help="File holding the broker password."),
    ca: Path | None = typer.Option(None, help="CA bundle to check the broker's certificate (mqtts)."),
    cert: Path | None = typer.Option(None, help="Client certificate (mqtts)."),
    key: Path | None = typer.Option(None, help="Client certificate's private key (mqtts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only warnings and errors."),
) -> None:
    """Subscribe to the fleet's telemetry and store every window once, until SIGTERM or Ctrl-C."""
    with user_errors():
        from edgekit.bundle.signing import load_private_key
        from edgekit.telemetry.collector import Collector, CollectorSettings
        from edgekit.telemetry.store import open_store

        settings = CollectorSettings(
            broker=broker,
            username=username,
            password=read_password(password_file),
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            fleet=fleet,
            share=share,
            client_id=client_id,
            session_expiry=session_expiry,
            repair=repair,
        )
        signer = load_private_key(sign_key) if sign_key is not None else None
        with (
            _log_to_stderr(logging.WARNING if quiet else logging.INFO),
            open_store(db) as store,
            stop_on_signals() as stop,
            Collector(settings, store, sign_key=signer) as collector,
        ):
            err.print(
                f"collecting {settings.fleet} from {settings.safe_url} into {store.where} as {collector.client_id}"
                " (Ctrl-C to stop)",
                soft_wrap=True,
                markup=False,
            )
            while not stop.wait(0.5):
                if not collector.running:
                    raise TelemetryError("the collector stopped by itself: see the log lines above")
        counts = collector.counts
    asked = collector.repair
    out.print(
        f"stopped: {counts.received} messages, {counts.stored} windows stored, {counts.duplicates} duplicates,"
        f" {counts.rejected} rejected ({counts.spoofed} speaking for another device), {counts.states} states,"
        f" {asked.requests} resend requests for {asked.windows_asked} missing windows",
        soft_wrap=True,
    )


@telemetry_app.command("show")
def show(
    db: str = typer.Option("telemetry.db", help=DB_HELP),
    p99_minutes: int = typer.Option(P99_MINUTES, min=1, help=P99_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """One line per device: status, model, windows, requests, errors, recent p99, drift, last seen, missing windows."""
    with user_errors():
        from edgekit.telemetry.store import open_store

        with open_store(db, create=False) as store:
            where = store.where
            devices = store.summary(p99_minutes=p99_minutes)
    if as_json:
        typer.echo(json.dumps({"devices": [d.to_json() for d in devices]}, indent=2))
        return
    if not devices:
        out.print(f"no devices in {where} yet", soft_wrap=True)
        return
    out.print(_table(devices, where, p99_minutes))


def _table(devices: list[DeviceSummary], where: str, p99_minutes: int) -> Table:
    table = Table(title=f"telemetry in {where}", title_justify="left")
    p99 = f"p99 ms, last {p99_minutes} min"
    for column in ("fleet", "device", "status", "model", "windows", "requests", "errors", p99, "drift"):
        table.add_column(column, justify="right" if column in ("windows", "requests", "errors", p99) else "left")
    table.add_column("last seen (UTC)", no_wrap=True)
    for column in ("missing", "dropped"):
        table.add_column(column, justify="right")
    for d in devices:
        model = " ".join(x for x in (d.model_name, d.model_version) if x) or "-"
        rate = d.error_rate
        table.add_row(
            d.fleet,
            d.device,
            _status(d.status),
            model,
            f"{d.windows:,}",
            f"{d.requests:,}",
            f"{d.errors:,}" + (f" ({rate:.1%})" if rate is not None else ""),
            d.p99_text,
            "-" if d.drift is None else (Text("yes", style="bold red") if d.drift else "no"),
            "-"
            if d.last_seen is None
            else datetime.fromtimestamp(d.last_seen, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            _missing(d),
            "-" if d.dropped is None else f"{d.dropped:,}",
        )
    return table


def _missing(d: DeviceSummary) -> Text | str:
    """Windows missing between the first and last stored: the gaps still to repair, and those the device lost."""
    if not d.gaps and not d.lost:
        return "0"
    text = f"{d.gaps + d.lost:,}" + (f" ({d.lost:,} lost)" if d.lost else "")
    return Text(text, style="red" if d.lost else "yellow")


def _status(status: str | None) -> Text:
    return Text("-" if status is None else status, style={"online": "green", "offline": "red"}.get(status or "", ""))


def read_password(path: Path | None) -> str | None:
    """The broker password kept in ``path`` (``--password-file``), or ``None`` without one."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--password-file {path} cannot be read ({exc.strerror}): give a readable file") from exc


@contextlib.contextmanager
def _log_to_stderr(level: int) -> Iterator[None]:
    """The collector's log lines (connects, reconnects, rejected messages) on stderr, while collecting."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("edgekit.telemetry")
    previous = log.level
    log.addHandler(handler)
    log.setLevel(level)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
