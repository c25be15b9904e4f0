"""The device package installs on its own and never imports the host toolkit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgekit_runtime import __version__
from edgekit_runtime.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgekit-runtime {__version__}"


def test_runtime_imports_nothing_from_the_host_toolkit():
    code = (
        "import sys, edgekit_runtime.cli, edgekit_runtime.errors\n"
        "print(sorted(m for m in sys.modules if m == 'edgekit' or m.startswith('edgekit.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
