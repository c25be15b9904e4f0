"""The facts the doctor judges: read from /proc-like files, and engines imported in a child process."""

from __future__ import annotations

import platform
import struct

from edgekit_runtime.platform_facts import gather, parse_meminfo, parse_os_release, probe_import
from tests.runtime.boards import PI4_64


def test_gather_reads_the_files_under_root(tmp_path):
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(PI4_64)
    (tmp_path / "proc" / "meminfo").write_text("MemTotal:        3884100 kB\nMemFree:  100 kB\n")
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    (tmp_path / "etc" / "os-release").write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    facts = gather(probe=False, root=tmp_path)
    assert facts.board == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts.cpu == "Cortex-A72"
    assert "asimd" in facts.cpu_flags
    assert facts.memory_bytes == 3884100 * 1024
    assert facts.os == "Debian GNU/Linux 12 (bookworm)"
    # what is not a file is this machine's
    assert facts.machine == platform.machine()
    assert facts.python == platform.python_version()
    assert facts.python_bits == struct.calcsize("P") * 8
    assert all(e.imports is None for e in facts.engines)  # not probed


def test_gather_on_this_machine_lists_the_engines_with_versions():
    facts = gather(probe=False)
    names = {e.name: e.version for e in facts.engines}
    assert {"onnxruntime", "ai-edge-litert", "tflite-runtime"} <= set(names)
    assert names["onnxruntime"] is not None  # the dev environment has it
    assert facts.cores >= 1
    doc = facts.to_json()
    assert doc["arch"] == facts.arch
    assert doc["cpu_flags"] == sorted(facts.cpu_flags)


def test_the_probe_names_the_signal_an_import_dies_of(tmp_path, monkeypatch):
    (tmp_path / "sigill_engine.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    (tmp_path / "broken_engine.py").write_text("raise ImportError('libfoo.so: cannot open shared object file')\n")
    (tmp_path / "good_engine.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert probe_import("sigill_engine") == (False, "killed by SIGILL (illegal instruction)")
    assert probe_import("broken_engine") == (False, "ImportError: libfoo.so: cannot open shared object file")
    assert probe_import("good_engine") == (True, None)


def test_meminfo_and_os_release():
    assert parse_meminfo("MemFree: 1 kB\n") is None
    assert parse_os_release("NAME=x\n") is None
    assert parse_os_release("PRETTY_NAME=Raspbian\n") == "Raspbian"
