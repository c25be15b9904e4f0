"""tools/wheel_matrix.py without the network: its pip command lines, how it reads pip's answers, and the table
it printed into examples/raspberrypi/README.md, replayed from the recording next to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "wheel_matrix.py"
RECORDING = ROOT / "examples" / "raspberrypi" / "wheel-matrix.json"
README = ROOT / "examples" / "raspberrypi" / "README.md"


@pytest.fixture(scope="module")
def wm(load_tool):
    return load_tool("wheel_matrix")


def test_platform_tags_cover_every_glibc_the_os_accepts(wm):
    tags = wm.platform_tags("aarch64", (2, 36))
    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_28_aarch64" in tags  # onnxruntime's newest aarch64 wheels: not manylinux2014
    assert tags[-3:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
    assert len(tags) == 36 - 17 + 1 + 2


def test_rows_come_from_the_runtime_pyproject(wm):
    rows = wm.rows(ROOT / "runtime" / "pyproject.toml")
    alone = {r.label for r in rows if not r.deps}
    assert {"numpy>=1.26", "onnxruntime>=1.20", "ai-edge-litert>=1.2", "tflite-runtime", "uvloop>=0.19"} <= alone
    sets = {r.label: r for r in rows if r.deps}
    assert set(sets) == {"edgekit-runtime[onnx]", "edgekit-runtime[litert]", "edgekit-runtime + tflite-runtime"}
    assert "onnxruntime>=1.20" in sets["edgekit-runtime[onnx]"].requirements
    assert any(r.startswith("numpy") for r in sets["edgekit-runtime[onnx]"].requirements)


def test_markers_are_evaluated_for_the_target(wm):
    reqs = ["tomli>=1.1; python_version < '3.11'", "uvloop>=0.19; sys_platform != 'win32'"]
    assert wm.needed(reqs, "aarch64", "3.11") == ["uvloop>=0.19"]
    assert wm.needed(reqs, "armv7l", "3.10") == ["tomli>=1.1", "uvloop>=0.19"]


def test_the_pip_command_downloads_only_binaries_for_the_target(wm, tmp_path):
    argv = wm.pip_argv(["numpy>=1.26"], "armv7l", "3.12", tmp_path, deps=False, index=[wm.PYPI])
    assert argv[1:4] == ["-m", "pip", "download"]
    assert "install" not in argv
    for flag in ("--isolated", "--only-binary=:all:", "--no-deps"):
        assert flag in argv
    assert argv[argv.index("--python-version") + 1] == "3.12"
    assert argv[argv.index("--index-url") + 1] == wm.PYPI
    assert "linux_armv7l" in argv
    assert argv[-1] == "numpy>=1.26"
    with_deps = wm.pip_argv(
        ["x"], "aarch64", "3.11", tmp_path, deps=True, index=[wm.PYPI, "https://www.piwheels.org/simple"]
    )
    assert "--no-deps" not in with_deps
    assert with_deps[with_deps.index("--extra-index-url") + 1] == "https://www.piwheels.org/simple"


def test_answers_from_pip_output(wm):
    saved = ["onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_aarch64.whl"]
    assert wm.answer_from(0, "", saved, deps=False) == wm.Answer(ok=True, detail="1.32.0")
    assert wm.answer_from(0, "", saved * 15, deps=True) == wm.Answer(ok=True, detail="yes (15 wheels)")
    missing = (
        "WARNING: Location 'file:///opt/x/' is ignored\n"
        "ERROR: Could not find a version that satisfies the requirement numpy>=1.26 (from versions: none)\n"
        "ERROR: No matching distribution found for numpy>=1.26\n"
    )
    assert wm.answer_from(1, missing, [], deps=False) == wm.Answer(ok=False, detail="no wheel")
    assert wm.answer_from(1, missing, [], deps=True) == wm.Answer(ok=False, detail="no: numpy")
    with pytest.raises(SystemExit, match="cannot reach the index"):
        wm.answer_from(
            1, "WARNING: Retrying ... NewConnectionError('...')\nERROR: No matching distribution", [], deps=True
        )


def test_collect_asks_every_cell_and_drops_rows_no_target_needs(wm):
    table = [
        wm.Row("numpy>=1.26", ("numpy>=1.26",), deps=False),
        wm.Row("tomli", ("tomli; python_version < '3.11'",), deps=False),
    ]

    def ask(row, arch, python, _index):
        if not wm.needed(row.requirements, arch, python):
            return None
        return wm.Answer(ok=arch == "aarch64", detail="2.0" if arch == "aarch64" else "no wheel")

    (numpy,) = wm.collect(table, [wm.PYPI], ask=ask, workers=2)
    assert numpy["label"] == "numpy>=1.26"
    assert numpy["answers"]["aarch64 3.13"] == {"ok": True, "detail": "2.0"}
    assert numpy["answers"]["armv7l 3.11"] == {"ok": False, "detail": "no wheel"}
    assert len(numpy["answers"]) == len(wm.TARGETS) * len(wm.PYTHONS)


def test_the_readme_holds_the_recorded_table():
    replayed = subprocess.run(
        [sys.executable, str(TOOL), "--replay", str(RECORDING)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert replayed.startswith("`python tools/wheel_matrix.py` on ")
    assert replayed in README.read_text()
    doc = json.loads(RECORDING.read_text())
    onnx = next(r for r in doc["rows"] if r["label"] == "edgekit-runtime[onnx]")
    assert (
        onnx["answers"]["aarch64 3.11"]["ok"] is True
    )  # what the Pi README promises: a 64-bit Pi installs from wheels


def test_replay_refuses_what_is_not_a_recording(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"schema": "other"}')
    done = subprocess.run(
        [sys.executable, str(TOOL), "--replay", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "is not a recording of this tool" in done.stderr
