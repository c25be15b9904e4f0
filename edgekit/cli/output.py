"""How the CLI talks to people: one console for results, one for errors and progress, error mapping.

Both consoles print text as written: rich markup is off, so a path, a node name or a message such as
``expects shape [batch, 1, 8, 8]`` or ``pip install 'edgekit[torch]'`` is never read as a style. Where the
CLI styles something itself it says so with :class:`rich.text.Text` (:func:`labelled`, :func:`styled`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: wide enough for the report table when output goes to a file or a CI log (rich assumes 80 columns there)
_PIPE_WIDTH = 150
out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)
for _console in (out, err):
    if not _console.is_terminal:
        _console.width = _PIPE_WIDTH


def styled(text: str, style: str) -> Text:
    """``text`` as written, in ``style`` (``"bold"``, ``"red"``)."""
    return Text(text, style=style)


def labelled(label: str, style: str, message: str) -> Text:
    """``error: MESSAGE``: the label in ``style``, the message as written."""
    return Text.assemble((label, style), " ", message)


def print_error(message: str) -> None:
    """One ``error:`` line on stderr, the message as written (``[batch, 64]`` stays)."""
    err.print(labelled("error:", "bold red", message), soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`EdgekitError`, the host's or the runtime's, into one red line on stderr and its exit code."""
    try:
        yield
    except EdgekitError as exc:
        print_error(str(exc))
        if os.environ.get("EDGEKIT_DEBUG"):
            err.print_exception()
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print(Text.assemble(("interrupted", "red"), ": nothing was written"))
        raise typer.Exit(130) from None


class RichProgress:
    """A :class:`edgekit.passes.base.Progress` that draws a transient bar on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        """Draw nothing when disabled (``--quiet``)."""
        self.enabled = enabled

    def track(self, items: list[Any], description: str) -> Iterator[Any]:
        """Yield ``items`` with a progress bar."""
        if not self.enabled or not err.is_terminal or len(items) < 2:  # noqa: PLR2004
            yield from items
            return
        from rich.progress import track

        # track() draws the description with markup of its own: escape it, so "[batch]" stays
        yield from track(items, description=escape(description), console=err, transient=True)


def human_bytes(n: float) -> str:
    """``123456`` → ``120.6 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":  # noqa: PLR2004
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM and SIGINT set (instead of killing the process), for a clean stop."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
