"""The device command's value types: click's ranges and choices, refusing a value in the runtime's words.

click checks the bounds; these only word the refusal as the runtime always has (``0 is not a positive count:
use 1 or more``), so that a flag and the same key in ``--config`` say the same thing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click


class _Worded(click.ParamType):  # type: ignore[type-arg]  # generic in newer click, not in 8.1 (supported)
    """A number in click's range, refused as ``'TEXT' is not WHAT`` or with ``outside`` (``{}`` is the number)."""

    what: str
    outside: str

    def _number(self, value: Any) -> float:  # noqa: ANN401  (text, or a number from the config file)
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:  # noqa: ANN401
        """The number, checked against click's bounds."""
        try:
            number = self._number(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not {self.what}", param, ctx)
        if math.isnan(number):  # no bound holds it off: refuse it here
            self.fail(self.outside.format(number), param, ctx)
        try:
            return super().convert(number, param, ctx)
        except click.BadParameter:
            self.fail(self.outside.format(number), param, ctx)


class WholeRange(_Worded, click.IntRange):
    """Whole numbers from ``low`` (to ``high``)."""

    def __init__(self, name: str, low: int, high: int | None = None, *, what: str, outside: str) -> None:
        """Bounds inclusive; ``what`` a number must be, ``outside`` what one past the bounds is."""
        click.IntRange.__init__(self, low, high)
        self.name, self.what, self.outside = name, what, outside

    def _number(self, value: Any) -> float:  # noqa: ANN401
        return int(value)


class NumberRange(_Worded, click.FloatRange):
    """Numbers from ``low`` (to ``high``); ``above`` leaves ``low`` itself out."""

    def __init__(
        self, name: str, low: float, high: float | None = None, *, above: bool = False, what: str, outside: str
    ) -> None:
        """Bounds inclusive unless ``above``; ``what`` a number must be, ``outside`` what one past the bounds is."""
        click.FloatRange.__init__(self, low, high, min_open=above)
        self.name, self.what, self.outside = name, what, outside

    def _number(self, value: Any) -> float:  # noqa: ANN401
        return float(value)


class Choice(click.Choice):  # type: ignore[type-arg]  # generic in newer click, not in 8.1 (supported)
    """click's choice, refused as argparse did: ``invalid choice: 'X' (choose from A, B)``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:  # noqa: ANN401
        """The choice, or the refusal."""
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"invalid choice: '{value}' (choose from {', '.join(map(str, self.choices))})", param, ctx)


COUNT = WholeRange("n", 1, what="a whole number", outside="{} is not a positive count: use 1 or more")
PORT = WholeRange(
    "port", 0, 65535, what="a port number", outside="{} is not a TCP port: use 1 to 65535, or 0 for a free one"
)
MILLISECONDS = NumberRange(
    "ms", 0, 10_000, what="a number of milliseconds", outside="{} is out of range: use 0 to 10000 milliseconds"
)
#: how short a model call runs inline, on the event loop
INLINE_MS = NumberRange(
    "ms", 0, 10, what="a number of milliseconds", outside="{} is out of range: use 0 (never) to 10 milliseconds"
)
#: a telemetry window
WINDOW_SECONDS = NumberRange(
    "seconds", 0.05, 86_400, what="a number of seconds", outside="{} is out of range: use 0.05 to 86400 seconds"
)
#: a deploy's watch: 0 commits at once
WATCH_SECONDS = NumberRange(
    "seconds", 0, 86_400, what="a number of seconds", outside="{} is out of range: use 0 to 86400 seconds"
)
POSITIVE = NumberRange("number", 0, above=True, what="a number", outside="{} keeps nothing: use a number > 0")
#: the outbox's replay, in hours: 0 keeps nothing sent; a year at most
REPLAY_HOURS = NumberRange(
    "hours", 0, 8760, what="a number of hours", outside="{} is out of range: use 0 to 8760 hours"
)
#: a path as given; a relative one in --config is the config file's folder's
PATH = click.Path(path_type=Path)
