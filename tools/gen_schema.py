"""Write ``docs/telemetry.schema.json`` from the message Structs in ``edgekit_runtime.contract``.

Run it after changing a message: ``.venv/bin/python tools/gen_schema.py``. With ``--check`` it writes nothing
and exits 1 when the file differs from what it would write (the test suite checks the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekit_runtime.contract.schema import schema_text

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "telemetry.schema.json"
COMMAND = ".venv/bin/python tools/gen_schema.py"


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the schema file; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs, writing nothing")
    parser.add_argument("--out", type=Path, default=SCHEMA_FILE, help="the file (default: %(default)s)")
    args = parser.parse_args(argv)
    text = schema_text()
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.out} differs from the message Structs: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
