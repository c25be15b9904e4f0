"""The import graph of edgekit's two packages: its circles, and what crosses from the device to the host.

An edge is any import a module can make: at module level, inside a function (the house's lazy imports) or under
``TYPE_CHECKING``. A circle is a set of modules that reach one another along those edges; a package's
``__init__`` counts as a module of its own, so a submodule importing its package's ``__init__`` while the
``__init__`` imports it back is a circle too.

    python tools/import_graph.py            # prints each circle, the device → host imports, the longest modules
    python tools/import_graph.py --check    # the same, and exits 1 if there is a circle or a crossing

``tests/test_house.py`` runs :func:`circles` and :func:`crossings`.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the packages and the folder each lives in
PACKAGES = {"edgekit": ROOT / "edgekit", "edgekit_runtime": ROOT / "runtime" / "edgekit_runtime"}


@dataclass(frozen=True)
class Module:
    """One source file as a module: its dotted name and path."""

    name: str
    path: Path

    @property
    def is_package(self) -> bool:
        """Whether this is a package's ``__init__``."""
        return self.path.name == "__init__.py"


def modules(packages: dict[str, Path] = PACKAGES) -> dict[str, Module]:
    """Every module of the packages, by dotted name."""
    found: dict[str, Module] = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = Module(".".join(parts), path)
    return found


def _known(name: str, known: dict[str, Module]) -> str | None:
    """The longest prefix of a dotted name that is one of the modules."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: Module, known: dict[str, Module]) -> set[str]:
    """The modules this one imports, at any depth of its code."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(hit for alias in node.names if (hit := _known(alias.name, known)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = ".".join(package[: len(package) - node.level + 1])
                base = f"{prefix}.{base}" if base else prefix
            for alias in node.names:
                # ``from pkg import sub`` imports the submodule when there is one, else a name of ``pkg``
                hit = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else _known(base, known)
                if hit:
                    found.add(hit)
    found.discard(module.name)
    return found


def graph(known: dict[str, Module] | None = None) -> dict[str, set[str]]:
    """Each module's imports."""
    known = modules() if known is None else known
    return {name: imports(module, known) for name, module in known.items()}


def circles(edges: dict[str, set[str]] | None = None) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    edges = graph() if edges is None else edges
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for start in sorted(edges):
        if start not in index:
            visit(start)
    return sorted(found)


def crossings(edges: dict[str, set[str]] | None = None) -> list[tuple[str, str]]:
    """Imports of the host toolkit from the device package (there must be none)."""
    edges = graph() if edges is None else edges
    return sorted(
        (name, target)
        for name, targets in edges.items()
        if name.startswith("edgekit_runtime")
        for target in targets
        if target == "edgekit" or target.startswith("edgekit.")
    )


def longest(count: int = 10) -> list[tuple[int, str]]:
    """The longest modules, in lines."""
    sizes = [(len(m.path.read_text(encoding="utf-8").splitlines()), n) for n, m in modules().items()]
    return sorted(sizes, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    """Print the circles, the crossings and the longest modules."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if there is a circle or a crossing")
    args = parser.parse_args(argv)
    edges = graph()
    found, crossed = circles(edges), crossings(edges)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports")
    for component in found:
        print(f"circle of {len(component)}: {' <-> '.join(component)}")
    for name, target in crossed:
        print(f"device imports host: {name} -> {target}")
    print("longest modules:", ", ".join(f"{name} {lines}" for lines, name in longest(5)))
    return 1 if args.check and (found or crossed) else 0


if __name__ == "__main__":
    sys.exit(main())
