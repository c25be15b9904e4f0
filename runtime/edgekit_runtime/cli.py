"""``edgekit-runtime``: the device command. Plain argparse: the device install stays small."""

from __future__ import annotations

import argparse
import sys

from edgekit_runtime import __version__
from edgekit_runtime.errors import RuntimeKitError


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(prog="edgekit-runtime", description="Run an edgekit bundle on this device.")
    parser.add_argument("--version", action="version", version=f"edgekit-runtime {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    try:
        parser.parse_args(argv)
        parser.print_help()
    except RuntimeKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
