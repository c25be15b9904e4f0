"""``edgekit inspect MODEL``."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from rich.text import Text

from edgekit.cli.option_values import shapes
from edgekit.cli.output import human_bytes, out, styled, user_errors


def inspect(
    model: str = typer.Argument(
        ...,
        help="ONNX model, or a source compress takes: scikit-learn .pkl/.joblib/.skops, MLflow model folder, "
        "PyTorch module.py:factory or .pt2 (shown as the ONNX model edgekit makes of it).",
    ),
    input_shape: list[str] = typer.Option([], help="NAME=D1,D2,... example input shapes (PyTorch needs them)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a model's inputs, outputs, opsets, ops, parameters and whether it is quantized."""
    with user_errors():
        from edgekit.importers import ImportOptions
        from edgekit.inspect_model import inspect_source

        summary = inspect_source(model, ImportOptions(input_shapes=shapes(input_shape)))
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
        return
    converted = "" if summary.kind == "onnx" else f" ({summary.kind}, converted to ONNX by edgekit)"
    out.print(
        Text.assemble(
            styled(summary.path, "bold"),
            f"{converted}  {human_bytes(summary.file_bytes)}  IR v{summary.ir_version}  producer: {summary.producer}",
        ),
        soft_wrap=True,
    )
    out.print("opsets: " + ", ".join(f"{d} {v}" for d, v in summary.opsets.items()))
    io = Table(title="inputs and outputs", title_justify="left")
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    for kind, specs in (("in", summary.inputs), ("out", summary.outputs)):
        for s in specs:
            io.add_row(kind, s.name, s.dtype, s.shape_text())
    out.print(io)
    weights = summary.weights
    out.print(
        f"parameters: {weights.param_count:,}  weights: "
        + ", ".join(f"{k} {human_bytes(v)}" for k, v in weights.bytes_by_dtype.items())
    )
    out.print(f"nodes: {summary.node_count}  ops: " + ", ".join(f"{k} x{v}" for k, v in summary.op_histogram.items()))
    out.print(f"quantized: {summary.quantized or 'no'}")
    for note in summary.notes:
        out.print(f"note: {note}", soft_wrap=True)
