"""``edgekit inspect MODEL``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgekit.cli.output import human_bytes, out, user_errors


def inspect(
    model: Path = typer.Argument(..., help="ONNX model file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a model's inputs, outputs, opsets, ops, parameters and whether it is quantized."""
    with user_errors():
        from edgekit.inspect_model import inspect_path

        summary = inspect_path(model)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
        return
    out.print(
        f"[bold]{summary.path}[/]  {human_bytes(summary.file_bytes)}  IR v{summary.ir_version}  "
        f"producer: {summary.producer}"
    )
    out.print("opsets: " + ", ".join(f"{d} {v}" for d, v in summary.opsets.items()))
    io = Table(title="inputs and outputs", title_justify="left")
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    for kind, specs in (("in", summary.inputs), ("out", summary.outputs)):
        for s in specs:
            io.add_row(kind, escape(s.name), s.dtype, escape(s.shape_text()))
    out.print(io)
    weights = summary.weights
    out.print(
        f"parameters: {weights.param_count:,}  weights: "
        + ", ".join(f"{k} {human_bytes(v)}" for k, v in weights.bytes_by_dtype.items())
    )
    out.print(f"nodes: {summary.node_count}  ops: " + ", ".join(f"{k} x{v}" for k, v in summary.op_histogram.items()))
    out.print(f"quantized: {summary.quantized or 'no'}")
