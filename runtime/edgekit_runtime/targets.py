"""Target profiles: what edgekit assumes about a board, and the settings it picks from that.

``--target NAME`` on ``edgekit compress`` and on ``edgekit-runtime serve``/``bench``/``doctor`` names one of
:data:`TARGETS`. A profile chooses

- **threads**: the engine's intra-op threads per call, and the thread count latency is reported at. It is the
  board's core count (a small board serves one request at a time fastest with all its cores); on a machine
  with fewer cores it is cut to those, and the report says so;
- **reduce_range**: 7-bit INT8 weights, needed only on x86 CPUs with AVX2 and no VNNI, whose ``VPMADDUBSW``
  kernels can saturate (onnxruntime's quantization docs, "When to use reduce-range"); Arm's kernels have no
  such problem, so Arm profiles keep the full 8 bits;
- **format**: the model format tried first. ``tflite`` (INT8 in LiteRT's XNNPACK) on the Armv8.0 boards
  without dot-product instructions, ``onnx`` elsewhere; see :class:`Target`'s ``why`` for each;
- **providers**: ONNX Runtime's execution providers, best first; present ones are used, the CPU is the
  fallback (a Jetson's TensorRT and CUDA).

Each profile lists the ``/proc/cpuinfo`` feature flags it assumes and those it assumes absent, with the
documents that say so; ``edgekit-runtime doctor --target`` checks them against the device. The choices of
format come from the CPUs' documented features and the engines' kernels, not from runs on the boards: no Pi
or Jetson was at hand. ``edgekit-runtime bench`` on the device is the measurement; docs/targets.md says how.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from edgekit_runtime.errors import ConfigError

Format = Literal["onnx", "tflite"]
CPU_ONLY = ("CPUExecutionProvider",)
JETSON_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

# The sources the profiles cite, once each.
_PI4_BRIEF = "https://datasheets.raspberrypi.com/rpi4/raspberry-pi-4-product-brief.pdf"
_PI5_BRIEF = "https://datasheets.raspberrypi.com/rpi5/raspberry-pi-5-product-brief.pdf"
_ZERO2_BRIEF = "https://datasheets.raspberrypi.com/rpizero2/raspberry-pi-zero-2-w-product-brief.pdf"
_A72_TRM = "Arm Cortex-A72 MPCore TRM (ARM 100095): Armv8.0-A; no dot product, no FP16 arithmetic"
_A53_TRM = "Arm Cortex-A53 MPCore TRM (ARM DDI 0500): Armv8.0-A; no dot product, no FP16 arithmetic"
_A76_TRM = "Arm Cortex-A76 Core TRM (ARM 100798): Armv8.2-A with the dot product (SDOT/UDOT) and FP16 extensions"
_A78AE_TRM = "Arm Cortex-A78AE Core TRM (ARM 101779): Armv8.2-A with the dot product and FP16 extensions"
_ORIN = "NVIDIA Jetson Orin Nano Series data sheet (DS-11105): 6-core Cortex-A78AE, Ampere GPU with tensor cores"
_MLAS = (
    "onnxruntime core/mlas: QgemmU8X8KernelUdot / QgemmS8S8KernelSdot (dot product, chosen at run time by "
    "HWCAP_ASIMDDP), else QgemmU8X8KernelNeon"
)
_XNNPACK = (
    "XNNPACK qs8/qu8 GEMM: aarch64 NEON MLAL kernels scheduled for the Cortex-A53 and A75 "
    "(…_asm_aarch64_neon_mlal_lane_cortex_a53), neondot kernels where the dot product is present"
)
_ORT_REDUCE = (
    "https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html "
    "(When to use reduce-range and per-channel quantization)"
)
_ORT_TRT = "https://onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html (engine cache, FP16)"
_TRT_OPS = "onnx-tensorrt docs/operators.md: DynamicQuantizeLinear not supported"
_X86_LEVELS = "x86-64 psABI micro-architecture levels: x86-64-v3 = AVX, AVX2, BMI1/2, F16C, FMA, MOVBE"


@dataclass(frozen=True)
class Target:
    """One board, what edgekit assumes of it, and what it chooses."""

    name: str
    board: str
    cpu: str
    #: the userland architecture wheels are chosen for
    arch: str
    cores: int
    memory: str
    #: ``/proc/cpuinfo`` flags assumed present (``doctor --target`` checks them)
    assumes: frozenset[str]
    #: flags assumed absent: what the choices are made for
    lacks: frozenset[str]
    threads: int
    reduce_range: bool
    format: Format
    providers: tuple[str, ...]
    #: why these choices, in a sentence or two
    why: str
    sources: tuple[str, ...]
    #: compress modes that do not suit the board, left out of the automatic search
    avoid_modes: tuple[str, ...] = ()

    @property
    def dot_product(self) -> bool:
        """Whether the board has 8-bit dot-product instructions."""
        return bool(self.assumes & {"asimddp", "avx512_vnni", "avx_vnni"})

    def threads_here(self, cores: int) -> int:
        """The profile's threads, cut to the cores this machine has."""
        return max(1, min(self.threads, cores))

    def describe(self) -> str:
        """One line: ``rpi4 (Raspberry Pi 4 Model B, 4x Cortex-A72): 4 threads, full-range INT8, TFLite first``."""
        first = {"onnx": "ONNX", "tflite": "TFLite"}[self.format]
        bits = "7-bit INT8 weights" if self.reduce_range else "full-range INT8"
        return f"{self.name} ({self.board}, {self.cpu}): {self.threads} threads, {bits}, {first} first"

    def to_json(self) -> dict[str, Any]:
        """The profile as the report and the bench JSON carry it."""
        return {
            "name": self.name,
            "board": self.board,
            "cpu": self.cpu,
            "arch": self.arch,
            "cores": self.cores,
            "assumes": sorted(self.assumes),
            "lacks": sorted(self.lacks),
            "threads": self.threads,
            "reduce_range": self.reduce_range,
            "format": self.format,
            "providers": list(self.providers),
            "avoid_modes": list(self.avoid_modes),
        }


_ARMV8_0 = frozenset({"fp", "asimd"})
_ARMV8_2 = frozenset({"fp", "asimd", "asimddp", "asimdhp", "fphp"})
_NO_DOT = frozenset({"asimddp", "asimdhp"})
_WHY_NO_DOT = (
    "An Armv8.0 core without SDOT/UDOT: onnxruntime's INT8 GEMM falls back to its plain NEON kernel, where INT8 "
    "can be slower than FP32, while XNNPACK (LiteRT's CPU path) has INT8 kernels scheduled for these cores; so "
    "TFLite INT8 is tried first, ONNX kept as the fallback. No FP16 arithmetic: FP16 models only save size."
)

_PI4 = Target(
    name="rpi4",
    board="Raspberry Pi 4 Model B / 400 / CM4",
    cpu="4x Cortex-A72 @ 1.5-1.8 GHz",
    arch="aarch64",
    cores=4,
    memory="1-8 GiB",
    assumes=_ARMV8_0,
    lacks=_NO_DOT,
    threads=4,
    reduce_range=False,
    format="tflite",
    providers=CPU_ONLY,
    why=_WHY_NO_DOT,
    sources=(_PI4_BRIEF, _A72_TRM, _MLAS, _XNNPACK, _ORT_REDUCE),
)
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        _PI4,
        Target(
            name="rpi5",
            board="Raspberry Pi 5",
            cpu="4x Cortex-A76 @ 2.4 GHz",
            arch="aarch64",
            cores=4,
            memory="2-16 GiB",
            assumes=_ARMV8_2,
            lacks=frozenset(),
            threads=4,
            reduce_range=False,
            format="onnx",
            providers=CPU_ONLY,
            why=(
                "An Armv8.2 core with SDOT/UDOT: onnxruntime's dot-product INT8 kernels apply, so static INT8 "
                "ONNX (QDQ) is the first choice; FP16 arithmetic is there too."
            ),
            sources=(_PI5_BRIEF, _A76_TRM, _MLAS, _ORT_REDUCE),
        ),
        # the Pi 4's choices, on four Cortex-A53 (Armv8.0 too) and 512 MiB
        dataclasses.replace(
            _PI4,
            name="rpi-zero2",
            board="Raspberry Pi Zero 2 W",
            cpu="4x Cortex-A53 @ 1 GHz",
            memory="512 MiB",
            why=_WHY_NO_DOT + " With 512 MiB in all, the smaller engine matters as much.",
            sources=(_ZERO2_BRIEF, _A53_TRM, _MLAS, _XNNPACK, _ORT_REDUCE),
        ),
        Target(
            name="jetson-orin",
            board="NVIDIA Jetson Orin Nano / NX",
            cpu="6x Cortex-A78AE (Orin Nano; 8 on Orin NX) + Ampere GPU",
            arch="aarch64",
            cores=6,
            memory="4-16 GiB, shared with the GPU",
            assumes=_ARMV8_2,
            lacks=frozenset(),
            threads=6,
            reduce_range=False,
            format="onnx",
            providers=JETSON_PROVIDERS,
            why=(
                "The GPU runs the model: ONNX through onnxruntime's TensorRT provider (its engines cached in the "
                "state directory), CUDA where TensorRT cannot, the CPU for the rest and as the fallback. TensorRT "
                "takes FP16 and static INT8 (QDQ) models as they are; it has no DynamicQuantizeLinear, so "
                "dynamic INT8 is not tried."
            ),
            avoid_modes=("int8-dynamic",),
            sources=(_ORIN, _A78AE_TRM, _ORT_TRT, _TRT_OPS),
        ),
        Target(
            name="x86",
            board="x86-64 edge box or server",
            cpu="x86-64-v3 (AVX2, FMA); VNNI not assumed",
            arch="x86_64",
            cores=4,
            memory="2 GiB or more",
            assumes=frozenset({"avx2", "fma"}),
            lacks=frozenset(),
            threads=4,
            reduce_range=True,
            format="onnx",
            providers=CPU_ONLY,
            why=(
                "AVX2 without VNNI is the common floor: its U8S8 kernels can saturate with full-range weights, so "
                "7-bit weights (reduce_range), which cost little and are safe with VNNI too."
            ),
            sources=(_X86_LEVELS, _ORT_REDUCE),
        ),
    )
}


def get(name: str) -> Target:
    """The profile called ``name``, or a one-line :class:`ConfigError` listing them."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"--target '{name}' is unknown: choose from {', '.join(TARGETS)}") from None


def mismatches(target: Target, arch: str, flags: frozenset[str]) -> list[str]:
    """How this CPU differs from what ``target`` assumes, one phrase each (none: it is the profile's CPU)."""
    if arch != target.arch:
        return [f"this is {arch}, {target.name} is {target.arch}"]
    missing = sorted(target.assumes - flags)
    return [f"this CPU lacks {', '.join(missing)}, which {target.name} assumes"] if missing else []


def fewer_cores(target: Target, cores: int) -> str | None:
    """``2 cores here, so 2 threads, not rpi4's 4`` where the profile's threads are cut to the cores there are."""
    if cores >= target.threads:
        return None
    s = "s" if cores != 1 else ""
    return f"{cores} core{s} here, so {cores} thread{s}, not {target.name}'s {target.threads}"


#: the CPU names edgekit_runtime.cpu gives (``ARM_CORES``) of each profile's board
_CORES = {"Cortex-A72": "rpi4", "Cortex-A76": "rpi5", "Cortex-A53": "rpi-zero2", "Cortex-A78AE": "jetson-orin"}


def guess(arch: str, cpu: str | None) -> Target | None:
    """The profile for a device with this architecture and CPU (``None``: no profile fits)."""
    if arch in {"x86_64", "amd64"}:
        return TARGETS["x86"]
    name = _CORES.get(cpu or "")
    return TARGETS[name] if name is not None and arch == "aarch64" else None
