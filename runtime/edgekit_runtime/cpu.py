"""What a CPU can do, as far as the engines' kernels care: its architecture, feature flags, cores and name.

One parser, :func:`parse_cpuinfo`, reads ``/proc/cpuinfo`` text (x86 ``flags``, Arm ``Features``, the CPU's name
and a Raspberry Pi's board); the device's facts (:func:`edgekit_runtime.platform_facts.gather`) and the host's
compress (:func:`host_cpu`, which decides ``reduce_range``) both read the CPU through it.

On Arm the kernel also hands each process its features as bits of the auxiliary vector (``getauxval(AT_HWCAP)``
and ``AT_HWCAP2``, named as /proc/cpuinfo names them): :func:`read_cpu` takes them from there when it reads this
machine's own /proc/cpuinfo, because under qemu-user that file is the (x86) host's, while the auxiliary vector is
the emulated CPU's.

ONNX Runtime's x86 U8S8 kernels use ``VPMADDUBSW``, which saturates when two products add past int16 on CPUs with
AVX2 but without VNNI; quantizing weights to 7 bits (``reduce_range``) avoids that. With VNNI (``avx512_vnni`` /
``avx_vnni``) or on Arm there is no such problem. See onnxruntime's quantization docs, "When to use reduce-range
and per-channel quantization".
"""

from __future__ import annotations

import dataclasses
import os
import platform
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

#: this machine's /proc/cpuinfo: the one file whose features the auxiliary vector may stand in for
PROC_CPUINFO = Path("/proc/cpuinfo")
#: Arm's CPU part numbers (``CPU part`` in /proc/cpuinfo, implementer 0x41) of the cores on boards edgekit meets
ARM_CORES = {
    "0xd03": "Cortex-A53",  # Raspberry Pi 3, Zero 2 W
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",  # Jetson Nano, TX2
    "0xd08": "Cortex-A72",  # Raspberry Pi 4, 400, CM4
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",  # Raspberry Pi 5
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",  # Jetson Orin
    "0xd4b": "Cortex-A78C",
}
#: x86's 8-bit dot-product instructions, as the kernel (``avx512_vnni``) and others (``avx512vnni``) spell them
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "avx512vnni", "avxvnni"})
#: 8-bit dot-product instructions: Arm's SDOT/UDOT (``asimddp``), x86's VNNI
DOT_PRODUCT_FLAGS = VNNI_FLAGS | {"asimddp"}
X86 = frozenset({"x86_64", "amd64", "i386", "i686"})
ARM = frozenset({"aarch64", "arm64", "armv6l", "armv7l", "armv8l", "arm"})

#: ``getauxval``'s keys (``<elf.h>``)
AT_HWCAP, AT_HWCAP2 = 16, 26
#: the names of AT_HWCAP's and AT_HWCAP2's bits, lowest first, space-separated, for a 64-bit Arm process (Linux's
#: ``arch/arm64/include/uapi/asm/hwcap.h``, named as ``arch/arm64/kernel/cpuinfo.c`` prints them)
HWCAPS_ARM64 = (
    (
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 "
        "sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg"
    ),
    (
        "dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 i8mm "
        "bf16 dgh rng bti mte"
    ),
)
#: the same for a 32-bit Arm process (``arch/arm/include/uapi/asm/hwcap.h``), also under a 64-bit kernel
HWCAPS_ARM32 = (
    (
        "swp half thumb 26bit fastmult fpa vfp edsp java iwmmxt crunch thumbee neon vfpv3 vfpv3d16 tls vfpv4 idiva "
        "idivt vfpd32 lpae evtstrm fphp asimdhp asimddp asimdfhm asimdbf16 i8mm"
    ),
    "aes pmull sha1 sha2 crc32 sb ssbs",
)


@dataclass(frozen=True)
class CpuInfo:
    """Architecture, feature flags and core count of a CPU, and its name where /proc/cpuinfo gives one."""

    #: ``uname -m``, lower case: ``x86_64``, ``aarch64``, ``armv7l``; ``""``: not known
    arch: str
    #: the first processor's flags (x86 ``flags``, Arm ``Features``)
    flags: frozenset[str]
    cores: int
    #: ``Cortex-A72`` (from Arm's part number), or x86's ``model name``
    cpu: str | None = None
    #: a Raspberry Pi's board (``Model``)
    board: str | None = None

    @property
    def is_x86(self) -> bool:
        """x86-64 (or 32-bit x86)."""
        return self.arch in X86

    @property
    def has_vnni(self) -> bool:
        """Whether the CPU has a dot-product instruction for 8-bit integers."""
        return bool(self.flags & VNNI_FLAGS)

    @property
    def needs_reduce_range(self) -> bool:
        """True on x86 with AVX2 and no VNNI, where full-range U8S8 can saturate."""
        return self.is_x86 and "avx2" in self.flags and not self.has_vnni

    def describe(self) -> str:
        """One line for the report."""
        vnni = "VNNI" if self.has_vnni else "no VNNI"
        return f"{self.arch}, {self.cores} cores, {vnni}" + (", AVX2" if "avx2" in self.flags else "")


def parse_cpuinfo(text: str, arch: str = "", cores: int = 0) -> CpuInfo:
    """``/proc/cpuinfo`` text: the first processor's flags, the CPU's name and the board's (Pi ``Model``).

    ``arch`` and ``cores`` are not in the text: they are the caller's to give (``""`` and 0: not known).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
    flags = frozenset((fields.get("flags") or fields.get("Features") or "").split())
    cpu = fields.get("model name")
    if fields.get("CPU implementer") == "0x41" and fields.get("CPU part") in ARM_CORES:
        cpu = ARM_CORES[fields["CPU part"]]  # better than "ARMv7 Processor rev 3 (v7l)"
    # a Pi's board is "Model" (x86's "model" is a number)
    return CpuInfo(arch=arch.lower(), flags=flags, cores=cores, cpu=cpu or None, board=fields.get("Model") or None)


def hwcap_names(hwcap: int, hwcap2: int, *, bits: int) -> frozenset[str]:
    """The features AT_HWCAP's and AT_HWCAP2's bits stand for, in a ``bits``-bit Arm process."""
    names = HWCAPS_ARM64 if bits == 64 else HWCAPS_ARM32  # noqa: PLR2004
    return frozenset(
        name
        for word, table in zip((hwcap, hwcap2), names, strict=True)
        for i, name in enumerate(table.split())
        if word >> i & 1
    )


def hwcaps(arch: str) -> frozenset[str] | None:
    """The Arm features the auxiliary vector gives this process; ``None`` off Arm Linux, or where it says nothing."""
    if arch.lower() not in ARM or not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (AttributeError, OSError):  # pragma: no cover  (a libc without getauxval)
        return None
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    hwcap, hwcap2 = getauxval(AT_HWCAP), getauxval(AT_HWCAP2)
    return hwcap_names(hwcap, hwcap2, bits=struct.calcsize("P") * 8) if hwcap else None


def read_cpu(cpuinfo: Path, *, arch: str, cores: int) -> CpuInfo:
    """The CPU the ``cpuinfo`` file describes (none there: no flags), with the ``arch`` and ``cores`` it does not say.

    For this machine's own /proc/cpuinfo on Arm, the features are this process's (:func:`hwcaps`).
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    info = parse_cpuinfo(text, arch, cores)
    features = hwcaps(arch) if cpuinfo == PROC_CPUINFO else None
    return info if features is None else dataclasses.replace(info, flags=features)


def host_cpu(cpuinfo: Path = PROC_CPUINFO) -> CpuInfo:
    """The CPU this process runs on, with the machine's cores (``os.cpu_count()``)."""
    return read_cpu(cpuinfo, arch=platform.machine(), cores=os.cpu_count() or 1)
