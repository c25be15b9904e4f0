"""Reading CPU features from /proc/cpuinfo text, and the reduce_range rule they decide."""

from __future__ import annotations

from edgekit_runtime import cpu as cpu_module
from edgekit_runtime.cpu import PROC_CPUINFO, host_cpu, hwcap_names, hwcaps, read_cpu
from edgekit_runtime.cpu import parse_cpuinfo as read_cpuinfo

X86_AVX2 = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi1 bmi2
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi1 bmi2
"""

X86_VNNI = """\
processor\t: 0
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512_vnni
"""

ARM64 = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid asimdhp asimddp
CPU implementer\t: 0x41
"""


def test_x86_with_avx2_and_no_vnni_needs_reduce_range():
    cpu = read_cpuinfo(X86_AVX2, "x86_64", 12)
    assert (cpu.arch, cpu.cores) == ("x86_64", 12)
    assert {"avx2", "fma", "sse4_2"} <= cpu.flags
    assert "spectre_v1" not in cpu.flags  # the bugs line is not a flags line
    assert cpu.is_x86
    assert not cpu.has_vnni
    assert cpu.needs_reduce_range
    assert cpu.describe() == "x86_64, 12 cores, no VNNI, AVX2"


def test_x86_with_vnni_does_not():
    cpu = read_cpuinfo(X86_VNNI, "AMD64", 4)
    assert cpu.arch == "amd64"
    assert cpu.is_x86
    assert cpu.has_vnni
    assert not cpu.needs_reduce_range
    assert cpu.describe() == "amd64, 4 cores, VNNI, AVX2"


def test_aarch64_features_line_does_not():
    cpu = read_cpuinfo(ARM64, "aarch64", 4)
    assert {"asimd", "asimddp"} <= cpu.flags
    assert not cpu.is_x86
    assert not cpu.needs_reduce_range
    assert cpu.describe() == "aarch64, 4 cores, no VNNI"


def test_x86_without_avx2_does_not():
    assert not read_cpuinfo("flags : fpu sse sse2 sse4_2", "x86_64", 2).needs_reduce_range


def test_no_cpuinfo_gives_no_flags():
    assert read_cpuinfo("", "x86_64", 2).flags == frozenset()


def test_host_cpu_reads_the_given_file(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86_VNNI)
    cpu = host_cpu(path)
    assert "avx512_vnni" in cpu.flags
    assert cpu.cores >= 1


def test_host_cpu_without_a_file(tmp_path):
    assert host_cpu(tmp_path / "missing").flags == frozenset()


def test_the_auxiliary_vector_names_arm_features_as_cpuinfo_does():
    # bits 1 and 20 of AT_HWCAP, 13 of AT_HWCAP2 (Linux's arch/arm64/include/uapi/asm/hwcap.h)
    assert hwcap_names(1 << 1 | 1 << 20, 1 << 13, bits=64) == {"asimd", "asimddp", "i8mm"}
    # a 32-bit process (also under a 64-bit kernel) has arch/arm's bits: NEON is bit 12, AES bit 0 of AT_HWCAP2
    assert hwcap_names(1 << 12 | 1 << 24, 1, bits=32) == {"neon", "asimddp", "aes"}
    assert hwcap_names(0, 0, bits=64) == frozenset()


def test_off_arm_the_auxiliary_vector_is_not_asked():
    assert hwcaps("x86_64") is None


def test_on_arm_this_machines_cpuinfo_gives_way_to_the_auxiliary_vector(monkeypatch, tmp_path):
    # under qemu-user /proc/cpuinfo is the x86 host's; the auxiliary vector is the emulated CPU's
    monkeypatch.setattr(cpu_module, "hwcaps", lambda arch: frozenset({"fp", "asimd", "asimddp"}))  # noqa: ARG005
    assert read_cpu(PROC_CPUINFO, arch="aarch64", cores=4).flags == {"fp", "asimd", "asimddp"}
    path = tmp_path / "cpuinfo"  # another file is read as it is
    path.write_text(ARM64)
    assert "asimdhp" in read_cpu(path, arch="aarch64", cores=4).flags
