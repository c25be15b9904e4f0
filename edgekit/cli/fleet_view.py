"""How ``edgekit fleet`` draws devices, rollouts and the live view: rich tables, nothing else.

Cells hold the devices' words as written (the consoles print no markup); a status is a styled :class:`Text`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit.fleet.link import FleetMessage
    from edgekit.fleet.rollout import RolloutResult
    from edgekit.telemetry.store import DeviceSummary

_COLOURS = {
    "committed": "green",
    "rolled_back": "yellow",
    "done": "green",
    "refused": "red",
    "failed": "red",
    "timeout": "red",
    "online": "green",
    "offline": "red",
}


def _coloured(status: str) -> Text:
    return Text(status, style=_COLOURS.get(status, ""))


def _ago(when: float | None, now: float) -> str:
    if when is None:
        return "-"
    seconds = max(0.0, now - when)
    if seconds < 120:  # noqa: PLR2004
        return f"{seconds:.0f} s ago"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.0f} min ago"
    return dt.datetime.fromtimestamp(when, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def devices_table(rows: Sequence[DeviceSummary], now: float | None = None, *, p99_minutes: int = 15) -> Table:
    """``edgekit fleet devices``: one row per device of the collector's database (``p99_minutes``: its header)."""
    now = time.time() if now is None else now
    table = Table(title="devices", title_justify="left")
    p99_header = f"p99 ms, last {p99_minutes} min"
    for column in ("fleet", "device", "status", "model", "last seen", p99_header, "error rate", "drift"):
        table.add_column(column, justify="right" if column in (p99_header, "error rate") else "left")
    for row in rows:
        model = f"{row.model_name} {row.model_version}" if row.model_name else "-"
        rate = "-" if row.error_rate is None else f"{row.error_rate:.2%}"
        p99 = row.p99_text
        drift = Text("-" if row.drift is None else "drift" if row.drift else "no", style="yellow" if row.drift else "")
        status = _coloured(row.status or "unknown")
        table.add_row(row.fleet, row.device, status, model, _ago(row.last_seen, now), p99, rate, drift)
    return table


def rollout_table(result: RolloutResult) -> Table:
    """A rollout's devices and where each got to (redrawn as events arrive)."""
    title = f"{result.command} {result.id}"
    if result.bundle:
        title += f": {result.bundle['name']} {result.bundle['version']}"
    table = Table(title=title, title_justify="left")
    for column in ("device", "stage", "status", "model", "detail"):
        table.add_column(column)
    shown = {step.device for step in result.steps}
    for step in result.steps:
        table.add_row(step.device, step.stage, _coloured(step.status), step.version or "-", step.detail[:80])
    for device in result.rest:
        if device not in shown:
            table.add_row(device, "rest", Text("waiting for the canary", style="dim"), "-", "")
    return table


def summary_line(result: RolloutResult) -> str:
    """One line on how it ended."""
    counts: dict[str, int] = {}
    for step in result.steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{result.command} {result.id}: {result.outcome} ({tally or 'nothing sent'})"


class WatchView:
    """``edgekit fleet watch``: each device's state and its latest command step, from the messages seen."""

    def __init__(self, fleet: str) -> None:
        """Nothing seen yet."""
        self.fleet = fleet
        self.rows: dict[str, dict[str, str]] = {}

    def take(self, message: FleetMessage) -> None:
        """Update the device's row with ``message``."""
        row = self.rows.setdefault(message.device, {"status": "?", "model": "-", "command": "-", "step": "-"})
        doc = message.doc
        model = doc.get("model")
        if isinstance(model, dict) and model.get("version") is not None:
            row["model"] = f"{model.get('name')} {model.get('version')}"
        if message.kind == "state":
            row["status"] = str(doc.get("status"))
        else:
            row["command"] = f"{doc.get('command')} {doc.get('id')}"
            row["step"] = str(doc.get("status"))
            row["detail"] = str(doc.get("detail") or "")[:80]

    def table(self) -> Table:
        """The rows, by device."""
        table = Table(title=f"fleet {self.fleet}", title_justify="left")
        for column in ("device", "status", "model", "last command", "step", "detail"):
            table.add_column(column)
        for device, row in sorted(self.rows.items()):
            table.add_row(
                device,
                _coloured(row["status"]),
                row["model"],
                row["command"],
                _coloured(row["step"]),
                row.get("detail", ""),
            )
        return table
