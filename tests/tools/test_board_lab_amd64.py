"""tools/board_lab.py's amd64 root, without building it: run natively (no qemu, no binfmt), with /sys, and with
read-only binds. The root itself runs in tests/tools/test_fresh_machine.py."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def lab(load_tool):
    return load_tool("board_lab")


def test_the_amd64_recipe_is_a_root_of_its_own_with_the_same_packages(lab):
    assert lab.Recipe("amd64").key().startswith("bookworm-amd64-")
    assert lab.Recipe("amd64").key() != lab.Recipe("arm64").key()
    assert lab.Recipe("amd64").packages == ("python3", "python3-venv", "ca-certificates", "procps")


def test_a_native_run_has_no_qemu_cpu_and_gets_sys(lab):
    line = lab.command_line(Path("/r"), lab.NATIVE, ["true"], binds=[], env={})
    script = line[-1]
    assert "QEMU_CPU" not in script
    assert "mount -t sysfs sysfs /r/sys" in script
    assert script.endswith("exec chroot /r env -i PATH=" + lab.PATH + " HOME=/root LANG=C.UTF-8 true")


def test_a_read_only_bind_is_remounted_read_only(lab):
    line = lab.command_line(
        Path("/r"), lab.NATIVE, ["true"], binds=[], env={}, read_only=[(Path("/opt/wheels"), "/opt/wheels")]
    )
    assert "mount --bind /opt/wheels /r/opt/wheels && mount -o remount,bind,ro /r/opt/wheels" in line[-1]


def test_the_amd64_root_asks_for_no_binfmt_entry(lab, monkeypatch, tmp_path):
    if platform.machine() != "x86_64":
        pytest.fail(f"this test is written for an x86-64 host, not {platform.machine()}")
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lab.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(lab, "BINFMT", tmp_path)  # no binfmt entries at all: arm64 is refused, amd64 is not
    with pytest.raises(lab.LabError, match="binfmt_misc has no qemu-aarch64"):
        lab.check_host("arm64")
    lab.check_host("amd64")


def test_the_amd64_root_needs_an_x86_64_host(lab, monkeypatch):
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lab.platform, "machine", lambda: "aarch64")
    with pytest.raises(lab.LabError, match="the amd64 root runs natively, on an x86-64 host; this one is aarch64"):
        lab.check_host("amd64")


def test_the_cli_runs_amd64_on_the_host_cpu_by_default(lab, monkeypatch):
    ran = {}

    def run(recipe, cpu, argv, **_):
        ran.update(arch=recipe.arch, cpu=cpu, argv=argv)
        return lab.subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(lab, "run", run)
    assert lab.main(["run", "--arch", "amd64", "--", "uname", "-m"]) == 0
    assert ran == {"arch": "amd64", "cpu": lab.NATIVE, "argv": ["uname", "-m"]}
