"""A Jetson's software (its L4T release and JetPack, CUDA, cuDNN, TensorRT), and the doctor's lines about it.

Jetson Linux writes its release to ``/etc/nv_tegra_release``::

    # R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024

which is L4T 36.4.0. Which JetPack each release belongs to is on NVIDIA's release pages, the JetPack archive
(https://developer.nvidia.com/embedded/jetpack-archive) and the Jetson Linux archive
(https://developer.nvidia.com/embedded/jetson-linux-archive): R32 is JetPack 4 (Ubuntu 18.04, CUDA 10.2),
R34 and R35 JetPack 5 (Ubuntu 20.04 with Python 3.8, CUDA 11.4), R36 JetPack 6 (Ubuntu 22.04 with Python 3.10:
R36.2 and R36.3 are JetPack 6.0 with CUDA 12.2, R36.4 JetPack 6.1 and 6.2 with CUDA 12.6), R38 JetPack 7
(Jetson Thor).

ONNX Runtime's GPU build for a Jetson is NVIDIA's: PyPI's ``onnxruntime-gpu`` is built for x86-64 (and
Windows), and PyPI's aarch64 ``onnxruntime`` is the CPU build. NVIDIA's Jetson AI Lab publishes
``onnxruntime-gpu`` wheels per JetPack and CUDA; for JetPack 6 with CUDA 12.6 the index is :data:`JP6_INDEX`
(examples/jetson/install.sh uses the same). For JetPack 5 no wheel for the Python 3.10+ the runtime needs is
published: its wheels are for JetPack 5's Python 3.8.

Everything is read under a root folder, so tests hand in a fake one; on a machine that is not a Jetson (no
``/etc/nv_tegra_release``) nothing else is looked for and :func:`findings` says nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from edgekit_runtime.findings import Finding

if TYPE_CHECKING:
    from pathlib import Path

#: NVIDIA's Jetson AI Lab index of wheels for JetPack 6 with CUDA 12.6 (L4T R36.4 and later R36 releases)
JP6_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"
#: the oldest onnxruntime-gpu the runtime supports (doctor.MIN_VERSIONS; a test keeps them equal)
ORT_GPU_MIN = "1.20"
#: the file Jetson Linux writes its release to
RELEASE_FILE = "etc/nv_tegra_release"
#: where JetPack's CUDA keeps its runtime library (``/usr/local/cuda`` links to ``/usr/local/cuda-12.6``)
CUDA_DIRS = ("usr/local/cuda*/lib64", "usr/local/cuda*/targets/aarch64-linux/lib")
#: where JetPack's cuDNN and TensorRT packages put their libraries
LIB_DIRS = ("usr/lib/aarch64-linux-gnu",)
#: L4T's major release → JetPack's
JETPACK = {32: "4", 34: "5", 35: "5", 36: "6", 38: "7"}
#: what installs a missing JetPack library on the device (NVIDIA's JetPack install instructions)
APT_JETPACK = "sudo apt install nvidia-jetpack"

_RELEASE = re.compile(r"^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)", re.MULTILINE)
_LIBRARY = re.compile(r"\blib[\w+-]+\.so[\w.]*")


class Installed(Protocol):
    """An engine's distribution as :class:`~edgekit_runtime.platform_facts.Engine` describes it."""

    @property
    def version(self) -> str | None:
        """The installed version."""

    @property
    def imports(self) -> bool | None:
        """Whether it imports in a fresh process (``None``: not asked)."""

    @property
    def import_error(self) -> str | None:
        """Why it does not."""


class JetsonFacts(Protocol):
    """What :func:`findings` reads of a device's facts: a :class:`~edgekit_runtime.platform_facts.Platform`.

    Named here by what is read, not imported, because ``platform_facts`` reads the Jetson's facts with this module.
    """

    @property
    def l4t(self) -> str | None:
        """The L4T release (:attr:`Software.l4t`)."""

    @property
    def cuda(self) -> str | None:
        """The CUDA runtime's version (:attr:`Software.cuda`)."""

    @property
    def cudnn(self) -> str | None:
        """The version of cuDNN."""

    @property
    def tensorrt(self) -> str | None:
        """TensorRT's version."""

    def engine(self, name: str) -> Installed | None:
        """The installed engine called ``name``."""


@dataclass(frozen=True)
class Software:
    """What a Jetson has installed.

    Versions come from the libraries' file names (``libcudart.so.12.6.68`` is 12.6.68); ``""`` is a library
    found without a version in its name; ``None`` is not found.
    """

    #: the L4T release, ``"36.4.0"``; ``"unknown"``: the release file does not read as one; ``None``: not a Jetson
    l4t: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    tensorrt: str | None = None


def parse_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 4.0, ...`` → ``"36.4.0"``; ``None`` when it does not read like that."""
    match = _RELEASE.search(text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _numbers(l4t: str) -> tuple[int, int]:
    """``"36.4.0"`` → ``(36, 4)``; ``(0, 0)`` for a release that could not be read."""
    parts = [int(n) for n in re.findall(r"\d+", l4t)[:2]] or [0]
    return parts[0], parts[1] if len(parts) > 1 else 0


def jetpack(l4t: str | None) -> str | None:
    """The JetPack major release an L4T release belongs to (``"36.4.0"`` → ``"6"``); ``None`` if unknown."""
    return None if l4t is None else JETPACK.get(_numbers(l4t)[0])


def cuda_expected(l4t: str) -> str | None:
    """The CUDA that JetPack installs with this L4T release (``"12.6"``); ``None`` if unknown."""
    major, minor = _numbers(l4t)
    if major == 36:  # noqa: PLR2004
        return "12.6" if minor >= 4 else "12.2"  # noqa: PLR2004
    return {32: "10.2", 34: "11.4", 35: "11.4"}.get(major)


def wheel_index(l4t: str) -> str | None:
    """The index with NVIDIA's onnxruntime-gpu for this release: JetPack 6 with CUDA 12.6 (R36.4+) only."""
    major, minor = _numbers(l4t)
    return JP6_INDEX if major == 36 and minor >= 4 else None  # noqa: PLR2004


def gpu_install(index: str) -> str:
    """The pip command that installs NVIDIA's onnxruntime-gpu from ``index``."""
    return f"pip install --extra-index-url {index} 'onnxruntime-gpu>={ORT_GPU_MIN}'"


def library_version(root: Path, folders: tuple[str, ...], name: str) -> str | None:
    """The newest ``name`` (``libcudart.so``) in the folders the ``folders`` patterns match under ``root``.

    ``"12.6.68"`` from ``libcudart.so.12.6.68`` (links are followed to the file they name); ``""`` when only an
    unversioned ``libcudart.so`` is there; ``None`` when there is none.
    """
    names: set[str] = set()
    for folder in folders:
        for path in root.glob(f"{folder}/{name}*"):
            if path.exists():  # a dangling link is no library
                names |= {path.name, path.resolve().name}
    versions = [n[len(name) + 1 :] for n in names if n.startswith(f"{name}.")]
    versions = [v for v in versions if re.fullmatch(r"\d+(?:\.\d+)*", v)]
    if versions:
        return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    return "" if name in names else None


def read(root: Path) -> Software:
    """The Jetson's software under ``root``; all ``None`` where there is no ``/etc/nv_tegra_release``."""
    try:
        text = (root / RELEASE_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return Software()
    return Software(
        l4t=parse_release(text) or "unknown",
        cuda=library_version(root, CUDA_DIRS, "libcudart.so"),
        cudnn=library_version(root, LIB_DIRS, "libcudnn.so"),
        tensorrt=library_version(root, LIB_DIRS, "libnvinfer.so"),
    )


def findings(platform: JetsonFacts) -> list[Finding]:
    """The doctor's lines about a Jetson: its release, the GPU build of onnxruntime, CUDA, cuDNN and TensorRT.

    Nothing at all where this is not a Jetson.
    """
    if platform.l4t is None:
        return []
    return [_release(platform.l4t), *_engine(platform), *_libraries(platform)]


def _release(l4t: str) -> Finding:
    jp = jetpack(l4t)
    if l4t == "unknown":
        return Finding(
            "note",
            f"/{RELEASE_FILE} does not read like a Jetson Linux release ('# R36 (release), REVISION: 4.0, ...'): "
            "whether onnxruntime-gpu can use the GPU here was not checked",
        )
    if jp is None:
        return Finding(
            "note",
            f"/{RELEASE_FILE} names L4T release '{l4t}', which this doctor does not know: it knows R32 (JetPack 4) "
            "to R38 (JetPack 7); whether onnxruntime-gpu can use the GPU here was not checked",
        )
    cuda = cuda_expected(l4t)
    what = f"Jetson Linux L4T {l4t}: JetPack {jp}" + (f" (CUDA {cuda})" if cuda else "")
    if wheel_index(l4t) is not None:
        return Finding("ok", f"{what}; NVIDIA's onnxruntime-gpu for it: {JP6_INDEX}")
    if jp == "6":
        why = f"NVIDIA's onnxruntime-gpu wheels on {JP6_INDEX} are built for CUDA 12.6"
        fix = "upgrade to JetPack 6.1 or newer (L4T R36.4)"
    elif jp in ("4", "5"):
        why = "NVIDIA publishes no onnxruntime-gpu for it that runs on the Python 3.10+ the runtime needs"
        fix = "upgrade to JetPack 6.1 or newer"
    else:
        why = "this kit knows no onnxruntime-gpu wheels for it"
        fix = "install one by hand (install.sh --backend gpu --index URL)"
    return Finding("note", f"{what}: {why}, so the GPU is likely not used: {fix}")


def _engine(p: JetsonFacts) -> list[Finding]:
    gpu, cpu = p.engine("onnxruntime-gpu"), p.engine("onnxruntime")
    index = wheel_index(p.l4t) if p.l4t else None
    get_gpu = gpu_install(index) if index else f"pip install --extra-index-url INDEX 'onnxruntime-gpu>={ORT_GPU_MIN}'"
    if gpu is not None and cpu is not None:
        return [
            Finding(
                "problem",
                f"onnxruntime {cpu.version} (PyPI's CPU build) and onnxruntime-gpu {gpu.version} are both installed "
                "and share the module 'onnxruntime', so the one installed last wins: run pip uninstall -y "
                f"onnxruntime onnxruntime-gpu, then {get_gpu}",
            )
        ]
    if gpu is not None:
        found = [Finding("ok", f"onnxruntime-gpu {gpu.version}: NVIDIA's GPU build (TensorRT, CUDA, then the CPU)")]
        missing = _LIBRARY.search(gpu.import_error or "")
        if gpu.imports is False and missing:
            found.append(
                Finding(
                    "note",
                    f"{missing.group()} is missing for onnxruntime-gpu: it comes with JetPack ({APT_JETPACK}); CUDA's "
                    "libraries load from /usr/local/cuda/lib64 (the service sets LD_LIBRARY_PATH to it)",
                )
            )
        return found
    if cpu is not None:
        return [
            Finding(
                "note",
                f"onnxruntime {cpu.version} is PyPI's CPU build: the GPU is not used"
                + (f"; for TensorRT and CUDA: pip uninstall -y onnxruntime, then {get_gpu}" if index else ""),
            )
        ]
    return [Finding("note", f"for the GPU: {get_gpu}")] if index else []


def _libraries(p: JetsonFacts) -> list[Finding]:
    gpu = p.engine("onnxruntime-gpu") is not None
    found = []
    if p.cuda is not None:
        found.append(Finding("ok", f"CUDA runtime {p.cuda or '(version not in its name)'} (libcudart)"))
    else:
        found.append(
            Finding(
                "problem" if gpu else "note",
                "no CUDA runtime (libcudart.so) under /usr/local/cuda*/lib64: onnxruntime-gpu cannot use the GPU: "
                f"install JetPack's CUDA ({APT_JETPACK})",
            )
        )
    if p.cudnn is not None:
        found.append(Finding("ok", f"cuDNN {p.cudnn or '(version not in its name)'} (libcudnn)"))
    else:
        found.append(
            Finding(
                "note",
                f"no cuDNN (libcudnn.so) in /{LIB_DIRS[0]}: onnxruntime's CUDA provider needs it: install it with "
                f"JetPack ({APT_JETPACK})",
            )
        )
    if p.tensorrt is not None:
        found.append(
            Finding(
                "ok",
                f"TensorRT {p.tensorrt or '(version not in its name)'} (libnvinfer): a model's first start builds its "
                "engines (minutes), kept in STATE_DIR/trt-cache for the next",
            )
        )
    else:
        found.append(
            Finding(
                "note",
                f"no TensorRT (libnvinfer.so) in /{LIB_DIRS[0]}: onnxruntime's TensorRT provider cannot load; CUDA and "
                f"the CPU still run the model: install it with JetPack ({APT_JETPACK})",
            )
        )
    return found
