"""tools/board_lab.py without building a root: how a recipe names its cache, the command line a run becomes,
and how a crash of an instruction the core lacks is said. The lab itself runs in
tests/examples/test_raspberrypi_emulated.py."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def lab(load_tool):
    return load_tool("board_lab")


def test_a_changed_recipe_is_a_new_root_and_the_same_one_is_reused(lab):
    assert lab.Recipe("arm64").key() == lab.Recipe("arm64").key()
    assert lab.Recipe("arm64").key().startswith("bookworm-arm64-")
    assert lab.Recipe("arm64").key() != lab.Recipe("armhf").key()
    assert lab.Recipe("arm64").key() != lab.Recipe("arm64", packages=("python3",)).key()
    assert lab.Recipe("arm64").key() != lab.Recipe("arm64", version=2).key()


def test_a_run_is_a_private_mount_namespace_then_chroot_with_the_cpu_model(lab):
    line = lab.command_line(
        Path("/r"), "cortex-a72", ["python3", "-c", "print(1)"], binds=[(Path("/h/x"), "/src/x")], env={"A": "b"}
    )
    assert line[:5] == ["unshare", "--mount", "--propagation", "private", "sh"]
    script = line[-1]
    assert "mount -t proc proc /r/proc" in script
    assert "mount --bind /h/x /r/src/x" in script
    assert "/sys" not in script  # onnxruntime's cpuinfo crashes on the host's /sys under qemu
    assert script.endswith(
        "exec chroot /r env -i PATH=" + lab.PATH + " HOME=/root LANG=C.UTF-8 A=b "
        "QEMU_CPU=cortex-a72 python3 -c 'print(1)'"
    )


def test_a_layer_puts_an_overlay_over_the_cached_root(lab, tmp_path):
    line = lab.command_line(Path("/r"), "cortex-a76", ["true"], binds=[], env={}, layer=tmp_path)
    script = line[-1]
    assert f"lowerdir=/r,upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}" in script
    assert f"exec chroot {tmp_path / 'merged'} " in script
    assert f"mount -t proc proc {tmp_path / 'merged' / 'proc'}" in script


@pytest.mark.parametrize("code", [-signal.SIGILL, 128 + signal.SIGILL])
def test_an_illegal_instruction_names_the_cpu_model(lab, code):
    died = subprocess.CompletedProcess(["x"], code, "", "")
    assert lab.illegal_instruction(died, "cortex-a72").startswith(
        "illegal instruction under QEMU_CPU=cortex-a72 (Raspberry Pi 4):"
    )
    assert lab.illegal_instruction(subprocess.CompletedProcess(["x"], 1, "", ""), "cortex-a72") is None
    assert lab.illegal_instruction(subprocess.CompletedProcess(["x"], -signal.SIGSEGV, "", ""), "cortex-a72") is None


def test_a_cpu_the_arch_does_not_have_is_refused_before_anything_runs(lab):
    with pytest.raises(lab.LabError, match=r"--cpu 'cortex-a99': for arm64 the lab has cortex-a53, cortex-a72"):
        lab.run(lab.Recipe("arm64"), "cortex-a99", ["true"])


def test_two_builds_of_one_root_at_once_both_end_with_the_root(lab, tmp_path, monkeypatch):
    # dev.sh test builds the roots in the background; a second dev.sh started meanwhile builds them too
    recipe = lab.Recipe("amd64")
    monkeypatch.setattr(lab, "CACHE", tmp_path)
    monkeypatch.setattr(lab, "check_host", lambda _arch: None)
    final = tmp_path / recipe.key()

    def debootstrap(argv, **_kwargs):
        Path(argv[-2], "etc").mkdir()
        final.mkdir()  # the other build finishes first
        (final / "lab-recipe.json").write_text("{}")
        (final / "etc").mkdir()
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(lab.subprocess, "run", debootstrap)
    assert lab.root(recipe, log=False) == final
    assert sorted(p.name for p in tmp_path.iterdir()) == [recipe.key()]  # the loser's scratch folder is gone
