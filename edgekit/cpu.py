"""What the target CPU can do, as far as INT8 kernels care.

ONNX Runtime's x86 U8S8 kernels use ``VPMADDUBSW``, which saturates when two products add past
int16 on CPUs with AVX2 but without VNNI; quantizing weights to 7 bits (``reduce_range``)
avoids that. With VNNI (``avx512_vnni`` / ``avx_vnni``) or on Arm there is no such problem.
See onnxruntime's quantization docs, "When to use reduce-range and per-channel quantization".
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "avx512vnni", "avxvnni"})


@dataclass(frozen=True)
class CpuInfo:
    """Architecture, feature flags and core count of a CPU."""

    arch: str
    flags: frozenset[str]
    cores: int

    @property
    def is_x86(self) -> bool:
        """x86-64 (or 32-bit x86)."""
        return self.arch in {"x86_64", "amd64", "i386", "i686"}

    @property
    def has_vnni(self) -> bool:
        """Whether the CPU has a dot-product instruction for 8-bit integers."""
        return bool(self.flags & _VNNI_FLAGS)

    @property
    def needs_reduce_range(self) -> bool:
        """True on x86 with AVX2 and no VNNI, where full-range U8S8 can saturate."""
        return self.is_x86 and "avx2" in self.flags and not self.has_vnni

    def describe(self) -> str:
        """One line for the report."""
        vnni = "VNNI" if self.has_vnni else "no VNNI"
        return f"{self.arch}, {self.cores} cores, {vnni}" + (", AVX2" if "avx2" in self.flags else "")


def read_cpuinfo(text: str, arch: str, cores: int) -> CpuInfo:
    """Parse ``/proc/cpuinfo`` text (x86 ``flags`` or Arm ``Features`` lines)."""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in {"flags", "features"}:
            flags.update(value.split())
            break
    return CpuInfo(arch=arch.lower(), flags=frozenset(flags), cores=cores)


def host_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU this process runs on."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return read_cpuinfo(text, platform.machine(), os.cpu_count() or 1)
