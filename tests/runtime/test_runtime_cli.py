"""The device package installs on its own and never imports the host toolkit."""

from __future__ import annotations

import subprocess
import sys

from edgekit_runtime import __version__
from edgekit_runtime.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"edgekit-runtime {__version__}"


def test_runtime_imports_nothing_from_the_host_toolkit():
    code = "import sys, edgekit_runtime.cli, edgekit_runtime.errors; print(sorted(m for m in sys.modules if m == 'edgekit' or m.startswith('edgekit.')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
