"""An engine that is missing is told apart from one that is installed but cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit_runtime.backends import BackendSettings, open_backend
from edgekit_runtime.errors import ConfigError, MissingBackendError

MLP = Path(__file__).resolve().parents[2] / "examples" / "digits" / "mlp.onnx"


@pytest.mark.parametrize(
    ("backend", "modules"),
    [
        ("onnxruntime", ["onnxruntime"]),
        ("litert", ["ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"]),
    ],
)
def test_a_missing_engine_says_how_to_install_it(monkeypatch, backend, modules):
    for module in modules:  # import fails, and find_spec finds nothing: as if not installed
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingBackendError, match=r"pip install 'edgekit-runtime\[(onnx|litert)\]'"):
        open_backend(backend, b"", BackendSettings())


def test_an_engine_that_is_there_but_does_not_import_is_not_called_missing(tmp_path):
    # what a memory cap does to ONNX Runtime's shared library (prlimit --as=150M on this machine)
    fake = tmp_path / "onnxruntime"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ImportError('libonnxruntime.so.1: failed to map segment from shared object')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    cmd = [sys.executable, "-m", "edgekit_runtime.cli", "serve", str(MLP), "--port", "0", "--no-telemetry"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == ConfigError.exit_code
    assert done.stderr.strip() == (
        "error: onnxruntime is installed but cannot be imported (libonnxruntime.so.1: failed to map segment from "
        "shared object): run edgekit-runtime doctor"
    )
