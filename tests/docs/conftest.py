"""What the docs' tests share: the README's quickstart, run once, and scratch copies of the repository's files.

The quickstart's signed bundle and key are what the README's later sections and docs/targets.md and
docs/runtime.md go on with (``cnn-1.0.0.edgebundle``, ``fleet.pub``), so they are made once per session, by
running the quickstart as written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.docs.blocks import ROOT, find
from tests.docs.shell import DocShell, Result
from tests.edgekit.telemetry.conftest import postgres_url  # noqa: F401  (docs/telemetry.md collects into PostgreSQL)

if TYPE_CHECKING:
    from pathlib import Path

QUICKSTART = "Quickstart: from the demo to a signed bundle answering over HTTP"


def scratch(folder: Path, *paths: str) -> Path:
    """``folder`` with copies of the repository's ``paths`` (files or folders) at the same places."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        source, target = ROOT / path, folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    return folder


@dataclass(frozen=True)
class Quickstart:
    """The README's quickstart after it ran: its folder, and what each command gave."""

    work: Path
    results: list[Result]

    @property
    def bundle(self) -> Path:
        """The demo's bundle, signed."""
        return self.work / "out" / "digits-cnn" / "cnn-1.0.0.edgebundle"

    @property
    def public_key(self) -> Path:
        """``fleet.pub``."""
        return self.work / "fleet.pub"

    def device(self, folder: Path) -> Path:
        """``folder`` holding what a device is given: ``cnn-1.0.0.edgebundle`` and ``fleet.pub``."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.bundle, folder / self.bundle.name)
        shutil.copy2(self.public_key, folder / "fleet.pub")
        return folder


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> Quickstart:
    """The README's quickstart, both blocks, as written, in a copy of what it reads; the server stopped after."""
    work = scratch(tmp_path_factory.mktemp("quickstart") / "repo", "examples/digits")
    with DocShell(work) as shell:
        results = shell.play(find("README.md", QUICKSTART)) + shell.play(find("README.md", QUICKSTART, 1))
    return Quickstart(work, results)
