"""The device command: it never imports the host toolkit, and its engine flags."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgekit_runtime import __version__
from edgekit_runtime.cli import main
from tests.runtime.server.process import ServeProcess

MLP = Path(__file__).resolve().parents[2] / "examples" / "digits" / "mlp.onnx"


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


def test_providers_this_build_lacks_are_refused_in_one_line(capsys):
    code = main(["serve", str(MLP), "--providers", "cuda,cpu", "--no-telemetry", "--port", "0"])
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: execution provider CUDAExecutionProvider is not in this onnxruntime build")
    assert line.endswith("install the matching onnxruntime package, or drop --providers")


def test_a_target_on_another_board_is_warned_about_and_still_serves(tmp_path):
    server = ServeProcess([str(MLP), "--port", "0", "--no-telemetry", "--target", "rpi4"], tmp_path / "err.log")
    try:
        url = server.wait_ready()
        assert httpx.get(f"{url}/v2/models/mlp").json()["parameters"] == {"devices": ["CPUExecutionProvider"]}
    finally:
        assert server.stop() == 0
    warnings = [line for line in server.stderr().splitlines() if "--target rpi4" in line]
    assert warnings[0] == f"warning: --target rpi4: this is {platform.machine()}, rpi4 is aarch64"
