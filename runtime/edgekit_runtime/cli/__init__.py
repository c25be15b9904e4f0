"""``edgekit-runtime``: the device command, on click (already installed: uvicorn depends on it).

``edgekit-runtime serve MODEL`` verifies, loads and self-tests a bundle, then serves it over HTTP
(:mod:`.serve`; the server is imported only by that command); ``bench`` measures one (:mod:`.bench`),
``doctor`` checks the device (:mod:`.doctor`). ``serve --config FILE`` reads the flags from TOML
(:mod:`.config_file`); the flags' value types are in :mod:`.params` and :mod:`.target_flags`.

Every refusal is one line, ``error: ...``, on stderr, and a non-zero exit: 2 for a flag that cannot work
(a value click refuses ends ``(see edgekit-runtime COMMAND --help)``), 3 for a bundle that cannot be
trusted or run.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, NoReturn

import click

from edgekit_runtime import __version__
from edgekit_runtime.cli import bench, doctor, serve
from edgekit_runtime.errors import EdgekitError

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "edgekit-runtime"
#: usage errors exit with this, as click's and argparse's do
USAGE = 2


@click.group(
    PROG,
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Run an edgekit bundle on this device.",
)
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def command(ctx: click.Context) -> None:
    """Without a command: the help."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _sub in (serve.command, doctor.command, bench.command):
    command.add_command(_sub)


def parse(argv: Sequence[str]) -> SimpleNamespace:
    """``COMMAND FLAGS...`` as that command would take them (``--config`` read), without running it."""
    name, *rest = argv
    sub = command.commands[name]
    with sub.make_context(f"{PROG} {name}", rest) as ctx:
        return SimpleNamespace(**ctx.params)


def _usage(exc: click.UsageError, args: Sequence[str]) -> NoReturn:
    """Click's complaint as one line, ``error: ... (see PROG COMMAND --help)``, and exit 2."""
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) and exc.param is not None:
        param = exc.param
        name = "/".join(param.opts) if isinstance(param, click.Option) else param.human_readable_name
        message = f"argument {name}: {exc.message}"
    else:
        message = exc.format_message()
    if exc.ctx is not None:
        where = exc.ctx.command_path
    else:  # the parser's own complaints come without the command's context
        where = f"{PROG} {args[0]}" if args and args[0] in command.commands else PROG
    print(f"error: {' '.join(message.split())} (see {where} --help)", file=sys.stderr)
    raise SystemExit(USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (``--help``, ``--version`` and a refused flag exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with command.make_context(PROG, args) as ctx:
            code = command.invoke(ctx)
    except click.exceptions.Exit as done:  # --help, --version
        raise SystemExit(done.exit_code) from None
    except click.UsageError as exc:
        _usage(exc, args)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
