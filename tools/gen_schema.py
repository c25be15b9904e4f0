"""Write the docs' schemas, ``telemetry.schema.json`` and ``commands.schema.json``, from the contract's Structs.

Run it after changing a message: ``.venv/bin/python tools/gen_schema.py``. With ``--check`` it writes nothing
and exits 1 when a file differs from what it would write (the test suite checks the same). ``--out`` and
``--commands-out`` name other files: given either, only the files named are written (or checked).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit_runtime.contract.schema import commands_schema_text, schema_text

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "telemetry.schema.json"
COMMANDS_SCHEMA_FILE = ROOT / "docs" / "commands.schema.json"
COMMAND = ".venv/bin/python tools/gen_schema.py"


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the schema files; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file differs, writing nothing")
    parser.add_argument("--out", type=Path, help=f"the telemetry schema's file (default: {SCHEMA_FILE})")
    parser.add_argument(
        "--commands-out", type=Path, help=f"the commands schema's file (default: {COMMANDS_SCHEMA_FILE})"
    )
    args = parser.parse_args(argv)
    files: list[tuple[Path, Callable[[], str]]] = [
        (path, text)
        for path, text in ((args.out, schema_text), (args.commands_out, commands_schema_text))
        if path is not None
    ] or [(SCHEMA_FILE, schema_text), (COMMANDS_SCHEMA_FILE, commands_schema_text)]
    differ = False
    for path, text in files:
        differ |= _write(path, text(), check=args.check)
    return 1 if differ and args.check else 0


def _write(path: Path, text: str, *, check: bool) -> bool:
    """Whether ``path`` differed from ``text`` (written unless ``check``)."""
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current == text:
        return False
    if check:
        print(f"{path} differs from the message Structs: run {COMMAND}", file=sys.stderr)
    else:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return True


if __name__ == "__main__":
    sys.exit(main())
