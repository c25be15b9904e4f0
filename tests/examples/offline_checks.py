"""What the example kits' tests share: the system tools they run, and a root for ``systemd-analyze --root``.

The kits' units are all called ``edgekit-runtime.service`` and run a program that must exist in the root.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT_NAME = "edgekit-runtime.service"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: bash tools/dev.sh test installs it (apt-get install {name})")
    return path


def unit_root(tmp_path: Path, unit_text: str) -> Path:
    """A root for ``systemd-analyze --root``: the unit, a stand-in for its program, and the system's units."""
    root = tmp_path / "root"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "systemd" / "system" / UNIT_NAME).write_text(unit_text)
    program = root / re.search(r"^ExecStart=(\S+)", unit_text, re.MULTILINE).group(1).lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(system_units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    return root


def analyze(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [tool("systemd-analyze"), *argv, f"--root={root}", UNIT_NAME]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def local_config(config: Path, tmp_path: Path, bundle: Path, public_key: Path) -> Path:
    """A kit's TOML made to serve here: the test's bundle and key, loopback, a free port, no broker."""
    text = config.read_text().split("\n[mqtt]")[0]  # no broker in these tests: windows stay in the outbox
    text = text.replace("/opt/edgekit/bundles/digits-cnn-1.0.0.edgebundle", str(bundle))
    text = text.replace('"/etc/edgekit/trusted"', json.dumps(str(public_key)))
    text = text.replace('host = "0.0.0.0"', 'host = "127.0.0.1"').replace("port = 8080", "port = 0")
    path = tmp_path / "edgekit-runtime.toml"
    path.write_text(text)
    return path
