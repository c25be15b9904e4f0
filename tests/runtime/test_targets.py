"""Target profiles: each one's assumptions hold on its board's /proc/cpuinfo, and fail on the others'."""

from __future__ import annotations

import pytest

from edgekit_runtime import targets
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.platform_facts import parse_cpuinfo
from tests.runtime.boards import ORIN, PI4_64, PI5, X86

#: each profile's board as its kernel reports it (the Zero 2 W's Cortex-A53 reports what the Pi 4's A72 does)
BOARDS = {"rpi4": PI4_64, "rpi5": PI5, "jetson-orin": ORIN, "x86": X86}
ARCH = {"rpi4": "aarch64", "rpi5": "aarch64", "jetson-orin": "aarch64", "x86": "x86_64"}


def test_the_five_profiles_the_issue_names():
    assert list(targets.TARGETS) == ["rpi4", "rpi5", "rpi-zero2", "jetson-orin", "x86"]


def test_an_unknown_name_lists_them():
    with pytest.raises(ConfigError, match=r"^--target 'rpi3' is unknown: choose from rpi4, rpi5, rpi-zero2"):
        targets.get("rpi3")


@pytest.mark.parametrize("name", list(BOARDS))
def test_each_board_has_what_its_profile_assumes_and_lacks_what_it_says_it_lacks(name):
    target, flags = targets.get(name), parse_cpuinfo(BOARDS[name]).flags
    assert target.assumes <= flags
    assert not target.lacks & flags
    assert targets.mismatches(target, ARCH[name], flags) == []


def test_a_pi4_is_not_a_pi5():
    found = targets.mismatches(targets.get("rpi5"), "aarch64", parse_cpuinfo(PI4_64).flags)
    assert found == ["this CPU lacks asimddp, asimdhp, fphp, which rpi5 assumes"]


def test_another_architecture_is_named():
    assert targets.mismatches(targets.get("rpi4"), "x86_64", parse_cpuinfo(X86).flags) == [
        "this is x86_64, rpi4 is aarch64"
    ]
    assert targets.mismatches(targets.get("rpi4"), "armv7l", frozenset({"neon"})) == ["this is armv7l, rpi4 is aarch64"]


def test_the_choices_follow_the_features():
    for target in targets.TARGETS.values():
        assert target.threads == target.cores  # latency first: one call, every core
        assert target.sources
        assert target.why
        # 7-bit weights only where x86 without VNNI may run the model
        assert target.reduce_range == (target.arch == "x86_64")
        # TFLite first exactly where there is no 8-bit dot product
        assert (target.format == "tflite") == (target.arch == "aarch64" and not target.dot_product)
        assert target.providers[-1] == "CPUExecutionProvider"
    assert targets.get("jetson-orin").providers[0] == "TensorrtExecutionProvider"
    assert targets.get("jetson-orin").avoid_modes == ("int8-dynamic",)


def test_threads_are_cut_to_the_cores_here():
    pi = targets.get("rpi4")
    assert [pi.threads_here(n) for n in (1, 2, 4, 16)] == [1, 2, 4, 4]
    assert targets.fewer_cores(pi, 2) == "2 cores here, so 2 threads, not rpi4's 4"
    assert targets.fewer_cores(pi, 1) == "1 core here, so 1 thread, not rpi4's 4"
    assert targets.fewer_cores(pi, 4) is None


@pytest.mark.parametrize(
    ("arch", "cpu", "name"),
    [
        ("aarch64", "Cortex-A72", "rpi4"),
        ("aarch64", "Cortex-A76", "rpi5"),
        ("aarch64", "Cortex-A53", "rpi-zero2"),
        ("aarch64", "Cortex-A78AE", "jetson-orin"),
        ("x86_64", "Intel(R) Xeon(R) CPU @ 2.20GHz", "x86"),
        ("armv7l", "Cortex-A72", None),  # 32-bit Pi OS: no profile, its wheels are another story
        ("aarch64", "Neoverse-N1", None),
        ("aarch64", None, None),
    ],
)
def test_guess(arch, cpu, name):
    found = targets.guess(arch, cpu)
    assert (found.name if found else None) == name


def test_describe_and_json():
    pi = targets.get("rpi4")
    assert pi.describe() == (
        "rpi4 (Raspberry Pi 4 Model B / 400 / CM4, 4x Cortex-A72 @ 1.5-1.8 GHz): 4 threads, full-range INT8, "
        "TFLite first"
    )
    doc = targets.get("x86").to_json()
    assert doc["reduce_range"] is True
    assert doc["assumes"] == ["avx2", "fma"]
    assert doc["format"] == "onnx"
