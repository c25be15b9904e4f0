"""What this device is: the facts ``edgekit-runtime doctor`` judges and ``bench`` records.

:func:`gather` reads them once (the CPU through :mod:`edgekit_runtime.cpu`, ``/proc/meminfo``, the device tree,
``/etc/os-release``, a Jetson's release and CUDA libraries (:mod:`edgekit_runtime.jetson`), the installed engines'
versions) into a :class:`Platform`; everything that judges them takes a ``Platform``, so tests can hand in a
Raspberry Pi's, a Jetson's or a 32-bit Pi OS's facts without the hardware.

Engines are never imported here: an onnxruntime build that dies with an illegal instruction on this CPU
would take the doctor down with it. Their versions come from the installed metadata, and whether they import
is asked of a child process (:func:`probe_import`), whose death by a signal is itself the finding.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform as stdlib_platform
import signal
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit_runtime import jetson
from edgekit_runtime.cpu import DOT_PRODUCT_FLAGS, CpuInfo, parse_cpuinfo, read_cpu

#: the CPU's facts are read by :mod:`edgekit_runtime.cpu`; these names stay importable from here
__all__ = [
    "DOT_PRODUCT_FLAGS",
    "ENGINES",
    "CpuInfo",
    "Engine",
    "Platform",
    "gather",
    "glibc_version",
    "installed_version",
    "parse_cpuinfo",
    "parse_meminfo",
    "parse_os_release",
    "probe_import",
]

#: the engines the runtime can use: distribution name → the module the runtime imports
ENGINES = {
    "onnxruntime": "onnxruntime",
    "onnxruntime-gpu": "onnxruntime",  # NVIDIA's build (a Jetson's wheel) installs the same module
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
}
_ARM32 = frozenset({"armv6l", "armv7l", "armv8l", "arm"})


@dataclass(frozen=True)
class Engine:
    """An inference engine's distribution, as installed here."""

    name: str
    #: ``None``: not installed
    version: str | None
    #: whether ``import`` works in a fresh process; ``None``: not asked
    imports: bool | None = None
    #: why it does not: ``killed by SIGILL (illegal instruction)``, or the error's last line
    import_error: str | None = None


@dataclass(frozen=True)
class Platform:
    """The facts of one device."""

    #: the kernel's machine (``uname -m``): ``aarch64``, ``armv7l``, ``x86_64``
    machine: str
    python: str
    #: the Python's pointer width: 32 on a 32-bit userland, even under a 64-bit kernel
    python_bits: int
    #: ``None``: no glibc (musl, or not Linux)
    glibc: str | None
    cpu_flags: frozenset[str]
    #: cores this process may use
    cores: int
    cpu: str | None = None
    #: the board's name from the device tree (``Raspberry Pi 4 Model B Rev 1.4``)
    board: str | None = None
    os: str | None = None
    memory_bytes: int | None = None
    engines: tuple[Engine, ...] = ()
    numpy: str | None = None
    #: a Jetson's Jetson Linux release from /etc/nv_tegra_release (``"36.4.0"``, ``"unknown"`` if it does not
    #: read as one); ``None``: not a Jetson
    l4t: str | None = None
    #: on a Jetson, the versions of the CUDA runtime, cuDNN and TensorRT libraries found (``"12.6.68"``; ``""``:
    #: found, no version in the file name; ``None``: not found or not a Jetson), see :mod:`edgekit_runtime.jetson`
    cuda: str | None = None
    cudnn: str | None = None
    tensorrt: str | None = None

    @property
    def arch(self) -> str:
        """The userland's architecture, which is what wheels are chosen for (``armv7l`` under a 64-bit kernel)."""
        if self.machine == "aarch64" and self.python_bits == 32:  # noqa: PLR2004
            return "armv7l"
        if self.machine == "x86_64" and self.python_bits == 32:  # noqa: PLR2004
            return "i686"
        return self.machine

    @property
    def is_arm(self) -> bool:
        """Any Arm CPU."""
        return self.arch == "aarch64" or self.arch in _ARM32

    @property
    def is_arm32(self) -> bool:
        """A 32-bit Arm userland (32-bit Raspberry Pi OS, on any Pi)."""
        return self.arch in _ARM32

    @property
    def dot_product(self) -> bool:
        """The CPU has 8-bit dot-product instructions (``asimddp``, VNNI): what makes INT8 pay off."""
        return bool(self.cpu_flags & DOT_PRODUCT_FLAGS)

    @property
    def simd(self) -> str | None:
        """The vector unit the engines use: NEON on Arm, AVX2 / AVX-512 on x86; ``None`` when absent."""
        if self.is_arm:
            return "NEON" if self.cpu_flags & {"asimd", "neon"} or self.arch == "aarch64" else None
        if "avx512f" in self.cpu_flags:
            return "AVX-512"
        return "AVX2" if "avx2" in self.cpu_flags else None

    @property
    def jetpack(self) -> str | None:
        """A Jetson's JetPack release (``"6"`` for L4T R36), ``None`` elsewhere."""
        return jetson.jetpack(self.l4t)

    def engine(self, name: str) -> Engine | None:
        """The installed engine called ``name``, if it is installed."""
        return next((e for e in self.engines if e.name == name and e.version is not None), None)

    def describe(self) -> str:
        """One line: ``aarch64, Cortex-A72, 4 cores, Python 3.11.2 (64-bit), glibc 2.36``."""
        parts = [self.arch if self.arch == self.machine else f"{self.arch} userland on an {self.machine} kernel"]
        parts += [p for p in (self.board, self.cpu) if p]
        parts.append(f"{self.cores} core{'s' if self.cores != 1 else ''}")
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / (1 << 30):.1f} GiB")
        parts.append(f"Python {self.python} ({self.python_bits}-bit)")
        parts.append(f"glibc {self.glibc}" if self.glibc else "no glibc")
        if self.l4t is not None:
            parts.append(f"L4T {self.l4t}" + (f" (JetPack {self.jetpack})" if self.jetpack else ""))
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The facts as JSON (bench results carry them)."""
        doc = asdict(self)
        doc["cpu_flags"] = sorted(self.cpu_flags)
        doc["engines"] = [asdict(e) for e in self.engines]
        doc |= {"arch": self.arch, "dot_product": self.dot_product, "simd": self.simd, "jetpack": self.jetpack}
        return doc


def parse_meminfo(text: str) -> int | None:
    """``MemTotal`` in bytes."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def parse_os_release(text: str) -> str | None:
    """``PRETTY_NAME`` from /etc/os-release."""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"') or None
    return None


def glibc_version() -> str | None:
    """The glibc version of this process, ``None`` without glibc."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
        if text.startswith("glibc "):
            return text.split()[1]
    lib, version = stdlib_platform.libc_ver()
    return version if lib == "glibc" and version else None


def installed_version(name: str) -> str | None:
    """A distribution's installed version, without importing it."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_import(module: str, timeout: float = 120.0) -> tuple[bool, str | None]:
    """Import ``module`` in a fresh Python: ``(True, None)``, or ``(False, why)``; a signal's death is named."""
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    try:
        done = subprocess.run(  # noqa: S603  (our own interpreter, a fixed module name)
            [sys.executable, "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"import took over {timeout:.0f} s"
    if done.returncode == 0:
        return True, None
    if done.returncode < 0:
        sig = signal.Signals(-done.returncode)
        meaning = {
            signal.SIGILL: "illegal instruction",
            signal.SIGSEGV: "segmentation fault",
            signal.SIGBUS: "bus error",
        }
        return False, f"killed by {sig.name}" + (f" ({meaning[sig]})" if sig in meaning else "")
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return False, lines[-1].strip() if lines else f"exit code {done.returncode}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (not Linux)
        return os.cpu_count() or 1


def gather(*, probe: bool = True, root: Path = Path("/")) -> Platform:
    """The facts of this device; ``probe`` also imports each installed engine in a child process."""
    machine = stdlib_platform.machine() or "unknown"
    cpu = read_cpu(root / "proc/cpuinfo", arch=machine, cores=_cores())
    board = _read(root / "proc/device-tree/model").strip("\x00\n ") or cpu.board
    engines = []
    for name, module in ENGINES.items():
        version = installed_version(name)
        imports, error = probe_import(module) if probe and version is not None else (None, None)
        if version is not None or name != "onnxruntime-gpu":  # the GPU build is listed only where it is installed
            engines.append(Engine(name, version, imports, error))
    software = jetson.read(root)
    return Platform(
        machine=machine,
        python=stdlib_platform.python_version(),
        python_bits=struct.calcsize("P") * 8,
        glibc=glibc_version(),
        cpu_flags=cpu.flags,
        cores=cpu.cores,
        cpu=cpu.cpu,
        board=board or None,
        os=parse_os_release(_read(root / "etc/os-release")),
        memory_bytes=parse_meminfo(_read(root / "proc/meminfo")),
        engines=tuple(engines),
        numpy=installed_version("numpy"),
        l4t=software.l4t,
        cuda=software.cuda,
        cudnn=software.cudnn,
        tensorrt=software.tensorrt,
    )
