"""``edgekit bench-compare A.json B.json …``: devices' ``edgekit-runtime bench`` results side by side."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from edgekit.cli.output import err, human_bytes, labelled, out, user_errors


def bench_compare(
    files: list[Path] = typer.Argument(..., help="JSON files written by edgekit-runtime bench on each device."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of a table."),
) -> None:
    """Put devices' bench results beside each other: latency, throughput, memory, cold start."""
    with user_errors():
        from edgekit.bench_compare import compare

        rows, warnings = compare(files)
    for warning in warnings:
        err.print(labelled("warning:", "yellow", warning), soft_wrap=True)
    if as_json:
        typer.echo(json.dumps({"devices": [r.to_json() for r in rows]}, indent=2))
        return
    table = Table(title="edgekit-runtime bench, by device", title_justify="left")
    for column in ("device", "platform", "engine", "model", "p50 1t", "p99 1t", "best p50", "samples/s", "RSS"):
        table.add_column(column, justify="left" if column in ("device", "platform", "engine", "model") else "right")
    table.add_column("cold start", justify="right")
    for r in rows:
        table.add_row(
            r.device,
            r.platform,
            r.engine,
            r.model,
            f"{r.p50_ms:.3f} ms",
            f"{r.p99_ms:.3f} ms",
            f"{r.best_p50_ms:.3f} ms ({r.best_threads}t)",
            f"{r.samples_per_s:,.0f} (b{r.batch})",
            "-" if r.rss_bytes is None else human_bytes(r.rss_bytes),
            "-" if r.cold_start_s is None else f"{r.cold_start_s:.2f} s",
        )
    out.print(table)
