"""The docs' ``pip install`` lines, checked instead of run: what they name must exist here.

A test cannot run them (no network; the test's own virtual environment must not change), so each requirement is
checked against this repository: a local path (``.``, ``./runtime``) must hold a ``pyproject.toml``, a project
name (``edgekit-runtime``) must be one of the two projects, and every extra asked for (``[onnx]``) must be declared
there. A renamed extra or a moved package fails the docs' test.
"""

from __future__ import annotations

import re
import shlex
import sys

from tests.docs.blocks import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECTS = {"edgekit": ROOT, "edgekit-runtime": ROOT / "runtime"}


def check_pip_line(command: str) -> str:
    """Check each ``pip install`` (and ``python3 -m venv DIR``) of ``command``; say what was checked."""
    checked = []
    for part in command.split("&&"):
        words = shlex.split(part, comments=True)
        if words[:3] == ["python3", "-m", "venv"] and len(words) == 4:
            continue  # a fresh environment: nothing of this repository to check
        assert words[0].endswith("pip"), f"not a pip install: {part.strip()}"
        assert words[1] == "install", f"not a pip install: {part.strip()}"
        for spec in words[2:]:
            if spec.startswith("-") and spec != "-e":
                raise AssertionError(f"pip option {spec} is not checked by tests/docs/packages.py: {command}")
            if spec != "-e":
                checked.append(_check(spec))
    return "checked, not run: " + "; ".join(checked)


def _check(spec: str) -> str:
    match = re.fullmatch(r"([^\[\]]+)(?:\[([\w,-]+)\])?", spec)
    assert match, f"a requirement tests/docs/packages.py cannot read: {spec}"
    where, extras = match.group(1), [e for e in (match.group(2) or "").split(",") if e]
    if where.startswith((".", "/")):
        folder = (ROOT / where).resolve()
        assert (folder / "pyproject.toml").is_file(), f"pip install {spec}: no pyproject.toml in {where}"
    else:
        assert where in PROJECTS, f"pip install {spec}: {where} is not one of this repository's {sorted(PROJECTS)}"
        folder = PROJECTS[where]
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    declared = set(project.get("optional-dependencies", {}))
    missing = sorted(set(extras) - declared)
    assert not missing, f"pip install {spec}: {project['name']} declares no extra {missing} (it has {sorted(declared)})"
    return project["name"] + (f"[{','.join(extras)}]" if extras else "")
