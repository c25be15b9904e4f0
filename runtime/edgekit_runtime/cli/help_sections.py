"""``--help`` with a command's options in titled sections, each saying what its options are for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Mapping


class SectionOption(click.Option):
    """An option listed in a section of ``--help`` (``section=None``: with the command's other options)."""

    def __init__(self, *args: Any, section: str | None = None, **kwargs: Any) -> None:  # noqa: ANN401
        """Click's option, and its section's title."""
        super().__init__(*args, **kwargs)
        self.section = section


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options, then each section's: its title, what it is for, its options."""

    def __init__(self, *args: Any, sections: Mapping[str, str] | None = None, **kwargs: Any) -> None:  # noqa: ANN401
        """Click's command; ``sections`` maps each title to its description, in the order they are listed."""
        super().__init__(*args, **kwargs)
        self.sections = dict(sections or {})

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Options first, then the sections."""
        listed: dict[str | None, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None  # MODEL: in the help
            if record is not None:
                listed.setdefault(getattr(param, "section", None), []).append(record)
        with formatter.section("Options"):
            formatter.write_dl(listed.get(None, []))
        for title, text in self.sections.items():
            with formatter.section(title.capitalize()):
                formatter.write_text(text)
                formatter.write_paragraph()
                formatter.write_dl(listed.get(title, []))
