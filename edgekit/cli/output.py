"""How the CLI talks to people: one console for results, one for errors and progress, error mapping."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: wide enough for the report table when output goes to a file or a CI log (rich assumes 80 columns there)
_PIPE_WIDTH = 150
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
for _console in (out, err):
    if not _console.is_terminal:
        _console.width = _PIPE_WIDTH


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`EdgekitError`, the host's or the runtime's, into one red line on stderr and its exit code."""
    try:
        yield
    except EdgekitError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)  # shapes: [batch, 64]
        if os.environ.get("EDGEKIT_DEBUG"):
            err.print_exception()
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: nothing was written")
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

        yield from track(items, description=description, console=err, transient=True)


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
