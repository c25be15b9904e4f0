"""``edgekit-runtime doctor``: can this device run bundles, and what to do where it cannot.

It judges a :class:`~edgekit_runtime.platform_facts.Platform` (gathered once, or handed in by a test) and
prints one line per finding: ``ok``, ``note`` (works, but worth knowing) or ``problem`` (something will
fail), each problem with what to do. It exits 1 when there is a problem, else 0.

Known-bad engine versions, from the engines' trackers (each entry names its threads):

- onnxruntime 1.21.0 dies with ``Illegal instruction`` as soon as it is imported on a Raspberry Pi 4
  (Cortex-A72) and other Arm boards: microsoft/onnxruntime#23957 (Pi 4, Raspberry Pi OS 12 64-bit, the
  PyPI wheel; fixed upstream by microsoft/onnxruntime#23978), #24112 (Pi 4), #24512 (aarch64, "1.20 works
  well"), and synaptics-synap/examples#14 (an Arm board: "1.21.0 fails during import, 1.20.0 works").
  The fix was merged in March 2025, before 1.22 was released; which patch release first has it, the threads do
  not say, so the advice is 1.22 or newer (or 1.20.x).
- tflite-runtime 2.14 (the last, Python 3.11 at most) imports with NumPy 2 but fails to load a model ("A module
  that was compiled using NumPy 1.x cannot be run in NumPy 2"): seen here with tflite-runtime 2.14.0 and NumPy
  2.4.6 on x86-64; NumPy 1.26 works.
- onnxruntime 1.16.0 and 1.16.1 read ``ID_AA64ISAR0_EL1`` to look for dot-product instructions, which raises
  SIGILL on older Armv8.0 cores such as the Cortex-A53 (Pi 3, Zero 2 W): microsoft/onnxruntime#17851, fixed by
  microsoft/onnxruntime#17885 in 1.16.2 (whose notes list a "crash on some older 64-bit ARM devices").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit_runtime import jetson, targets
from edgekit_runtime.findings import Finding, Level
from edgekit_runtime.platform_facts import DOT_PRODUCT_FLAGS, gather

if TYPE_CHECKING:
    from edgekit_runtime.platform_facts import Engine, Platform
    from edgekit_runtime.targets import Target

#: the oldest Python the runtime supports (runtime/pyproject.toml's requires-python)
MIN_PYTHON = (3, 10)
#: the oldest engine versions the runtime supports (runtime/pyproject.toml's extras; a test keeps them equal)
MIN_VERSIONS = {"onnxruntime": "1.20", "onnxruntime-gpu": "1.20", "ai-edge-litert": "1.2"}
#: onnxruntime's newest aarch64 wheels are manylinux_2_28: an older glibc gets pip to fall back to old releases
ORT_GLIBC = (2, 28)


@dataclass(frozen=True)
class KnownBad:
    """Releases of an engine with crash reports on some CPUs."""

    package: str
    versions: frozenset[str]
    #: the userland architectures the reports are from
    arches: frozenset[str]
    what: str
    fix: str
    #: the tracker threads
    sources: tuple[str, ...]


KNOWN_BAD = (
    KnownBad(
        "onnxruntime",
        frozenset({"1.21.0"}),
        frozenset({"aarch64"}),
        "dies with an illegal instruction on import on Raspberry Pi 4 and other Arm boards",
        "pip install 'onnxruntime>=1.22' (or 'onnxruntime==1.20.1')",
        ("microsoft/onnxruntime#23957", "#24112", "#24512"),
    ),
    KnownBad(
        "onnxruntime",
        frozenset({"1.16.0", "1.16.1"}),
        frozenset({"aarch64"}),
        "can die with an illegal instruction on older Arm cores (Cortex-A53: Pi 3, Zero 2 W)",
        "pip install 'onnxruntime>=1.20'",
        ("microsoft/onnxruntime#17851", "fixed in 1.16.2 by #17885"),
    ),
)


def version_tuple(text: str) -> tuple[int, ...]:
    """``'1.21.0rc1'`` → ``(1, 21, 0)``: the leading numbers, enough to compare releases."""
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(p) for p in match.group().split(".")) if match else ()


def diagnose(platform: Platform, target: Target | None = None) -> list[Finding]:
    """Every finding about ``platform`` (checked against ``target``'s profile, if given), the most basic first."""
    return [
        *_python_and_libc(platform),
        *_engines(platform),
        *jetson.findings(platform),
        *_cpu(platform),
        *_target(platform, target),
    ]


def _target(p: Platform, target: Target | None) -> list[Finding]:
    fits = targets.guess(p.arch, p.cpu)
    if target is None:
        if fits is None:
            return []
        return [Finding("ok", f"profile {fits.name} fits this device: edgekit compress --target {fits.name}")]
    found = []
    wrong = targets.mismatches(target, p.arch, p.cpu_flags)
    fix = f"use --target {fits.name} (compress and serve)" if fits is not None else "use no --target here"
    if fits is not None and fits.name == target.name:
        fix = "run edgekit-runtime doctor --json and check the flags this board's kernel reports"
    found += [Finding("problem", f"--target {target.name}: {w}: {fix}") for w in wrong]
    fewer = targets.fewer_cores(target, p.cores)
    found += [Finding("note", f"--target {target.name}: {fewer}")] if fewer else []
    return found or [Finding("ok", f"--target {target.name}: this device has what the profile assumes")]


def _python_and_libc(p: Platform) -> list[Finding]:
    found: list[Finding] = []
    if version_tuple(p.python) < MIN_PYTHON:
        found.append(Finding("problem", f"Python {p.python} is older than the runtime supports: use Python 3.10+"))
    else:
        found.append(Finding("ok", f"Python {p.python} ({p.python_bits}-bit)"))
    if p.glibc is None:
        found.append(
            Finding(
                "problem",
                "no glibc (musl?): PyPI's onnxruntime and LiteRT wheels need it: use Raspberry Pi OS, Debian or Ubuntu",
            )
        )
    elif p.arch == "aarch64" and version_tuple(p.glibc) < ORT_GLIBC:
        found.append(
            Finding(
                "note",
                f"glibc {p.glibc} is older than onnxruntime's newest aarch64 wheels need (2.28): pip falls back to "
                "old releases; upgrade the OS (Raspberry Pi OS 12 has 2.36)",
            )
        )
    else:
        found.append(Finding("ok", f"glibc {p.glibc}"))
    return found


def _engines(p: Platform) -> list[Finding]:
    installed = [e for e in p.engines if e.version is not None]
    found: list[Finding] = []
    if p.arch == "armv6l":
        found.append(
            Finding(
                "problem",
                "armv6 (Pi Zero W, Pi 1): no engine wheel runs on it: use a Pi Zero 2 W or newer with 64-bit Pi OS",
            )
        )
    elif p.is_arm32 and p.engine("onnxruntime") is None:
        if any(e.name in ("ai-edge-litert", "tflite-runtime") for e in installed):
            found.append(
                Finding(
                    "note",
                    f"32-bit Arm userland ({p.arch}): there is no onnxruntime wheel for it, so only .tflite bundles "
                    "run here; the 64-bit Raspberry Pi OS runs ONNX bundles too",
                )
            )
        else:
            found.append(
                Finding(
                    "problem",
                    f"32-bit Arm userland ({p.arch}): there is no onnxruntime wheel for it: install the 64-bit "
                    "Raspberry Pi OS, or run .tflite bundles with LiteRT (install.sh --backend litert)",
                )
            )
    if not installed and not p.is_arm32:
        found.append(
            Finding(
                "problem",
                "no inference engine is installed: pip install 'edgekit-runtime[onnx]' (ONNX bundles) or "
                "'edgekit-runtime[litert]' (.tflite bundles)",
            )
        )
    found += [_engine(p, e) for e in installed]
    return found


def _engine(p: Platform, e: Engine) -> Finding:
    version = e.version or ""
    for bad in KNOWN_BAD:
        if e.name == bad.package and version in bad.versions and p.arch in bad.arches:
            return Finding("problem", f"{e.name} {version} {bad.what} ({', '.join(bad.sources)}): {bad.fix}")
    least = MIN_VERSIONS.get(e.name)
    if least is not None and version_tuple(version) < version_tuple(least):
        return Finding(
            "problem", f"{e.name} {version} is older than the runtime supports: pip install -U '{e.name}>={least}'"
        )
    if e.imports is False:
        return Finding("problem", f"{e.name} {version} cannot be imported ({e.import_error}): {_import_fix(e)}")
    if e.name == "tflite-runtime" and p.numpy is not None and version_tuple(p.numpy) >= (2,):
        # it imports, but its interpreter fails to load a model (NumPy's "compiled using NumPy 1.x" error)
        level: Level = "note" if p.engine("ai-edge-litert") is not None else "problem"
        return Finding(
            level,
            f"tflite-runtime {version} is built against NumPy 1 and cannot load a model with NumPy {p.numpy}: "
            "pip install 'numpy<2'"
            + (" (ai-edge-litert is used first, so only if you remove it)" if level == "note" else ""),
        )
    return Finding("ok", f"{e.name} {version}" + (" imports" if e.imports else " installed"))


def _import_fix(e: Engine) -> str:
    error = (e.import_error or "").lower()
    if any(s in error for s in ("failed to map segment", "memoryerror", "cannot allocate memory", "memory allocation")):
        return "this process may not map enough memory (ulimit -v, prlimit --as): raise the limit"
    if e.import_error and "SIGILL" in e.import_error:
        return f"this build uses instructions the CPU lacks: pip install '{e.name}!={e.version}' (another release)"
    return f"reinstall it: pip install --force-reinstall '{e.name}=={e.version}'"


def _cpu(p: Platform) -> list[Finding]:
    found: list[Finding] = []
    if p.is_arm32 and p.arch != "armv6l" and "neon" not in p.cpu_flags and "asimd" not in p.cpu_flags:
        found.append(Finding("problem", "no NEON in /proc/cpuinfo: the engines' Arm builds need it"))
    elif not p.is_arm and p.simd is None:
        found.append(Finding("note", "no AVX2: the engines run, on slower kernels"))
    dot = sorted(p.cpu_flags & DOT_PRODUCT_FLAGS)
    if dot:
        found.append(Finding("ok", f"8-bit dot-product instructions ({', '.join(dot)}): INT8 models can pay off"))
    else:
        hint = "asimddp: Pi 5 yes, Pi 4 no" if p.is_arm else "VNNI"
        found.append(
            Finding(
                "note",
                f"no 8-bit dot-product instructions ({hint}): INT8 may be no faster than FP32 here; compare both "
                "with edgekit-runtime bench",
            )
        )
        if not p.is_arm and "avx2" in p.cpu_flags:
            found.append(
                Finding("note", "AVX2 without VNNI: quantize for this CPU with edgekit compress --reduce-range")
            )
    return found


def report(platform: Platform, findings: list[Finding]) -> str:
    """The facts, then one line per finding, then the verdict."""
    engines = ", ".join(f"{e.name} {e.version or 'not installed'}" for e in platform.engines) or "none"
    cpu = [platform.simd or "no SIMD", f"dot product {'yes' if platform.dot_product else 'no'}"]
    lines = [
        f"platform  {platform.describe()}",
        *([f"os        {platform.os}"] if platform.os else []),
        f"cpu       {', '.join(cpu)}",
        f"engines   {engines}" + (f"; numpy {platform.numpy}" if platform.numpy else ""),
        "",
        *(f"{f.level:<8} {f.text}" for f in findings),
    ]
    problems = sum(f.level == "problem" for f in findings)
    lines.append(
        f"{problems} problem{'s' if problems != 1 else ''}: fix {'them' if problems > 1 else 'it'} as the line says"
        if problems
        else "no problems: this device can run bundles"
    )
    return "\n".join(lines)


def run(target: Target | None, *, probe: bool, as_json: bool) -> int:
    """Gather, judge, print (as JSON with ``as_json``); 1 when there is a problem."""
    platform = gather(probe=probe)
    findings = diagnose(platform, target)
    if as_json:
        doc = {"platform": platform.to_json(), "findings": [{"level": f.level, "text": f.text} for f in findings]}
        print(json.dumps(doc, indent=2))
    else:
        print(report(platform, findings))
    return 1 if any(f.level == "problem" for f in findings) else 0
