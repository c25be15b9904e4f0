"""Does the runtime install on a Raspberry Pi from wheels? pip's answer, per board, Python and backend.

    python tools/wheel_matrix.py                            # ask pip, print the Markdown table
    python tools/wheel_matrix.py --record matrix.json       # ... and keep pip's answers
    python tools/wheel_matrix.py --replay matrix.json       # the table again from kept answers, offline

The requirements are read from runtime/pyproject.toml: each dependency (markers evaluated for the target),
each backend extra, and tflite-runtime, which the LiteRT backend falls back to. For every target board and
Python, pip is asked to download (never install) with ``--only-binary=:all:``, ``--python-version`` and every
``--platform`` tag the target's glibc accepts (manylinux_2_17 … manylinux_2_36, manylinux2014 and linux_ARCH):

- each requirement alone (``--no-deps``): the version pip would take, or ``no wheel``;
- each install set with its dependencies (what ``pip install 'edgekit-runtime[onnx]'`` pulls): ``yes``, or the
  first requirement pip found no wheel for.

pip runs ``--isolated`` against ``--index`` (PyPI; Raspberry Pi OS 32-bit also uses piwheels.org, pass it with
``--index https://www.piwheels.org/simple`` where it can be reached), so local pip settings do not colour the
answer. Markers of transitive dependencies are pip's to evaluate, with this interpreter's environment.
Only ``--replay`` works without the network; the tests use it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "edgekit.wheel-matrix/1"
PYPI = "https://pypi.org/simple"
#: Raspberry Pi OS 12 (bookworm), 64-bit and 32-bit
TARGETS = ("aarch64", "armv7l")
PYTHONS = ("3.11", "3.12", "3.13")
GLIBC = (2, 36)
#: the LiteRT backend's fallback (runtime/edgekit_runtime/backends/litert.py), not an extra of the runtime
FALLBACKS = ("tflite-runtime",)
_MISSING = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)")
_NETWORK = ("Could not fetch URL", "Max retries exceeded", "NewConnectionError", "Network is unreachable")


@dataclass(frozen=True)
class Row:
    """One line of the table: requirements pip is asked about together."""

    label: str
    requirements: tuple[str, ...]
    #: with their dependencies (a whole install), or each alone
    deps: bool


@dataclass(frozen=True)
class Answer:
    """What pip said for one row, board and Python."""

    ok: bool
    #: the version (alone), the wheel count (with dependencies), or what is missing
    detail: str


def platform_tags(arch: str, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """Every ``--platform`` tag a glibc ``glibc`` system on ``arch`` installs, newest first."""
    tags = [f"manylinux_{glibc[0]}_{minor}_{arch}" for minor in range(glibc[1], 16, -1)]
    return [*tags, f"manylinux2014_{arch}", f"linux_{arch}"]


def environment(arch: str, python: str) -> dict[str, str]:
    """The marker environment of CPython ``python`` on Linux ``arch``."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": arch,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def rows(pyproject: Path) -> list[Row]:
    """The runtime's dependencies and backends, each alone, then each install set with its dependencies."""
    project = tomllib.loads(pyproject.read_text())["project"]
    core = [str(r) for r in project["dependencies"]]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    alone = [*core, *(r for reqs in extras.values() for r in reqs), *FALLBACKS]
    result = [Row(_label(r), (r,), deps=False) for r in alone]
    result += [Row(f"edgekit-runtime[{extra}]", (*core, *reqs), deps=True) for extra, reqs in extras.items()]
    result += [Row(f"edgekit-runtime + {f}", (*core, f), deps=True) for f in FALLBACKS]
    return result


def _label(requirement: str) -> str:
    req = Requirement(requirement)
    return f"{req.name}{req.specifier}"


def needed(requirements: Sequence[str], arch: str, python: str) -> list[str]:
    """The requirements whose markers hold on ``arch`` with ``python``, without the markers."""
    env = environment(arch, python)
    kept = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            kept.append(f"{req.name}{req.specifier}")
    return kept


def pip_argv(
    requirements: Sequence[str], arch: str, python: str, dest: Path, *, deps: bool, index: Sequence[str]
) -> list[str]:
    """``pip download`` for these requirements on ``arch`` with ``python``."""
    argv = [sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check", "--quiet"]
    argv += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python, "--dest", str(dest)]
    argv += [a for tag in platform_tags(arch) for a in ("--platform", tag)]
    argv += ["--index-url", index[0], *(a for url in index[1:] for a in ("--extra-index-url", url))]
    return [*argv, *([] if deps else ["--no-deps"]), *requirements]


def answer_from(returncode: int, output: str, wheels: Sequence[str], *, deps: bool) -> Answer:
    """An answer from pip's exit code, its output and the wheels it saved."""
    if returncode == 0:
        if deps:
            return Answer(ok=True, detail=f"yes ({len(wheels)} wheels)")
        version = wheels[0].split("-")[1] if wheels else "?"
        return Answer(ok=True, detail=version)
    if any(marker in output for marker in _NETWORK):
        raise SystemExit(f"error: pip cannot reach the index: {_last_line(output)}")
    missing = _MISSING.search(output)
    if missing:
        return Answer(ok=False, detail=f"no: {missing.group(1)}" if deps else "no wheel")
    return Answer(ok=False, detail=f"no: {_last_line(output)[:60]}")


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("WARNING")]
    return lines[-1] if lines else "pip failed"


def ask_pip(row: Row, arch: str, python: str, index: Sequence[str]) -> Answer | None:
    """Ask pip about ``row``; ``None`` when no requirement of it applies there (markers)."""
    requirements = needed(row.requirements, arch, python)
    if not requirements:
        return None
    with tempfile.TemporaryDirectory() as dest:
        argv = pip_argv(requirements, arch, python, Path(dest), deps=row.deps, index=index)
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        wheels = sorted(p.name for p in Path(dest).iterdir())
    return answer_from(done.returncode, done.stdout + done.stderr, wheels, deps=row.deps)


def collect(
    table: Sequence[Row],
    index: Sequence[str],
    ask: Callable[[Row, str, str, Sequence[str]], Answer | None] = ask_pip,
    workers: int = 6,
) -> list[dict[str, Any]]:
    """Every row's answers by ``"ARCH PYTHON"``, asked in parallel."""
    cells = [(row, arch, py) for row in table for arch in TARGETS for py in PYTHONS]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(lambda cell: ask(cell[0], cell[1], cell[2], index), cells))
    by_cell = {(row.label, arch, py): a for (row, arch, py), a in zip(cells, answers, strict=True)}
    recorded = []
    for row in table:
        found = {f"{arch} {py}": by_cell[row.label, arch, py] for arch in TARGETS for py in PYTHONS}
        if all(a is None for a in found.values()):
            continue  # a requirement no target needs (tomli on Python 3.11+)
        recorded.append(
            {
                "label": row.label,
                "deps": row.deps,
                "answers": {k: None if a is None else {"ok": a.ok, "detail": a.detail} for k, a in found.items()},
            }
        )
    return recorded


def render(doc: dict[str, Any]) -> str:
    """The recording as a Markdown table, with how and when it was made."""
    columns = [f"{arch} {py}" for arch in doc["targets"] for py in doc["pythons"]]
    names = {"aarch64": "64-bit", "armv7l": "32-bit"}
    header = [f"{names.get(c.split()[0], c.split()[0])} Py {c.split()[1]}" for c in columns]
    glibc = doc["glibc"]
    lines = [
        (
            f"`{doc['command']}` on {doc['date']} (pip {doc['pip']}, index {', '.join(doc['index'])}; Raspberry Pi "
            f"OS platform tags: aarch64 is 64-bit, armv7l 32-bit, glibc {glibc}):"
        ),
        "",
        "| requirement | " + " | ".join(header) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for row in doc["rows"]:
        label = f"**{row['label']}** with dependencies" if row["deps"] else f"`{row['label']}`"
        cells = []
        for column in columns:
            answer = row["answers"].get(column)
            cells.append("not needed" if answer is None else answer["detail"])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pip_version() -> str:
    done = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.split()[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Ask pip (or replay a recording) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pyproject", type=Path, default=ROOT / "runtime" / "pyproject.toml")
    parser.add_argument("--index", action="append", help=f"package index, repeatable (default: {PYPI})")
    parser.add_argument("--record", type=Path, help="write pip's answers to this JSON file")
    parser.add_argument("--replay", type=Path, help="print the table of a recording; asks no one")
    args = parser.parse_args(argv)
    if args.replay:
        try:
            doc = json.loads(args.replay.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            parser.error(f"--replay {args.replay}: cannot read it ({exc})")
        if doc.get("schema") != SCHEMA:
            parser.error(f"--replay {args.replay} is not a recording of this tool ({SCHEMA})")
        print(render(doc))
        return 0
    index = args.index or [PYPI]
    doc = {
        "schema": SCHEMA,
        "command": "python tools/wheel_matrix.py" + "".join(f" --index {url}" for url in args.index or []),
        "date": dt.datetime.now(dt.timezone.utc).date().isoformat(),
        "pip": _pip_version(),
        "index": index,
        "glibc": f"{GLIBC[0]}.{GLIBC[1]}",
        "targets": list(TARGETS),
        "pythons": list(PYTHONS),
        "rows": collect(rows(args.pyproject), index),
    }
    if args.record:
        args.record.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
