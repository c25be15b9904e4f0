"""``edgekit-runtime doctor``: check this device (:mod:`edgekit_runtime.doctor`), print the findings."""

from __future__ import annotations

import click

from edgekit_runtime import targets
from edgekit_runtime.cli.target_flags import TargetName


@click.command(
    "doctor",
    short_help="check this device: platform, engines, known-bad versions",
    help="Check the platform (architecture, Python, glibc, CPU features), the installed engines and their "
    "versions against known-bad releases, and say what to do about each problem. Exit 1 on a problem.",
)
@click.option("--json", "as_json", is_flag=True, help="print the facts and findings as JSON")
@click.option("--no-probe", is_flag=True, help="do not import each engine in a child process")
@click.option(
    "--target",
    type=TargetName(),
    metavar="NAME",
    help=f"also check the CPU has what this profile assumes ({', '.join(targets.TARGETS)})",
)
def command(*, as_json: bool, no_probe: bool, target: targets.Target | None) -> int:
    """Check this device; 1 when there is a problem."""
    from edgekit_runtime import doctor

    return doctor.run(target, probe=not no_probe, as_json=as_json)
