"""The house's shape, from tools/import_graph.py: no import circles, the device never imports the host, and no
module that has outgrown one idea. The checker is tried on small made-up packages first, so a pass means it looks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

#: the most lines a module may hold: past it, a module holds two ideas (split it where one ends)
MOST_LINES = 400


@pytest.fixture(scope="module")
def ig(load_tool):
    return load_tool("import_graph")


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_finds_lazy_type_checking_and_package_circles(ig, tmp_path):
    pkg = _package(
        tmp_path / "pkg",
        {
            "__init__.py": "from pkg.sub import thing\nimport pkg.sub.deep\n",
            "sub/__init__.py": "def thing():\n    from pkg import other\n",
            "sub/deep.py": "def g():\n    from pkg import thing  # a name of the package: its __init__\n",
            "other.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import sub\n",
            "alone.py": "import os\nfrom pkg.other import x\n",
            "rel.py": "from .rel2 import y\n",
            "rel2.py": "def f():\n    from . import rel\n",
        },
    )
    edges = ig.graph(ig.modules({"pkg": pkg}))
    assert edges["pkg.alone"] == {"pkg.other"}
    assert ig.circles(edges) == [["pkg", "pkg.sub.deep"], ["pkg.other", "pkg.sub"], ["pkg.rel", "pkg.rel2"]]


def test_the_checker_finds_the_device_importing_the_host(ig):
    edges = {"edgekit_runtime.model": {"edgekit.errors", "edgekit_runtime.specs"}, "edgekit.cli": {"edgekit_runtime"}}
    assert ig.crossings(edges) == [("edgekit_runtime.model", "edgekit.errors")]


def test_no_import_circles(ig):
    assert ig.circles() == []


def test_the_device_package_never_imports_the_host(ig):
    assert ig.crossings() == []


def test_no_module_outgrows_one_idea(ig):
    assert ig.modules(), "no modules found: the checker is looking in the wrong place"
    long = [(name, lines) for lines, name in ig.longest(5) if lines > MOST_LINES]
    assert long == []
