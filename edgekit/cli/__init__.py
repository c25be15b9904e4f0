"""The ``edgekit`` command line: thin wrappers that parse options, call the library, print results.

Only this package turns :class:`edgekit.errors.EdgekitError` into an exit code. Heavy imports
(onnx, onnxruntime) happen inside the commands, so ``edgekit --help`` stays fast.
"""

from __future__ import annotations

import typer

from edgekit import __version__
from edgekit.cli import bench_cmd, bundle_cmd, compress_cmd, fleet_cmd, inspect_cmd, telemetry_cmd
from edgekit.cli.usage_errors import OneLineUsageGroup

app = typer.Typer(
    name="edgekit",
    cls=OneLineUsageGroup,  # a refused option is one error line, as every other refusal
    help="Take a trained model to a fleet of small devices: compress, pack, run, sync, steer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help as written: "[default: 1%]" and "edgekit[litert]" are text, not rich markup
    context_settings={"max_content_width": 120},  # click's help stops at 80 columns otherwise
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Take a trained model to a fleet of small devices: compress, pack, run, sync, steer."""


app.command("compress")(compress_cmd.compress)
app.command("inspect")(inspect_cmd.inspect)
app.command("convert")(bundle_cmd.convert)
app.command("keygen")(bundle_cmd.keygen)
app.command("sign")(bundle_cmd.sign)
app.command("verify")(bundle_cmd.verify)
app.command("bench-compare")(bench_cmd.bench_compare)
app.add_typer(bundle_cmd.bundle_app, name="bundle")
app.add_typer(telemetry_cmd.telemetry_app, name="telemetry")
app.add_typer(fleet_cmd.fleet_app, name="fleet")


def main() -> None:
    """Entry point of the ``edgekit`` script."""
    app()
