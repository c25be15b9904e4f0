"""A command line typer refuses (an unknown option, a value of the wrong kind) as one ``error:`` line, exit 2.

typer draws such a refusal as a usage panel; ``edgekit`` says every refusal in one line, as
:func:`edgekit.cli.output.user_errors` does for the library's errors, and points at ``--help``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from edgekit.cli.output import print_error

#: click's ``UsageError`` (``typer.BadParameter``'s base): where typer keeps it depends on typer's version
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]
#: "no arguments: show the help", which newer click raises as a usage error
_NOT_ERRORS = ("NoArgsIsHelpError",)


class OneLineUsageGroup(TyperGroup):
    """The ``edgekit`` group: its and its commands' usage errors are one line on stderr, exit 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:  # noqa: ANN401
        """Parse the group's own options."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _USAGE_ERROR as exc:
            _refuse(exc)

    def invoke(self, ctx: Any) -> Any:  # noqa: ANN401  (click's context, wherever typer keeps click)
        """Parse and run the command."""
        try:
            return super().invoke(ctx)
        except _USAGE_ERROR as exc:
            _refuse(exc)


def _refuse(exc: Exception) -> None:
    if type(exc).__name__ in _NOT_ERRORS:
        raise exc
    message = " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
    ctx = getattr(exc, "ctx", None)
    see = f" (see {ctx.command_path} --help)" if ctx is not None and getattr(exc, "see_help", True) else ""
    print_error(message + see)
    raise typer.Exit(getattr(exc, "exit_code", 2)) from None
