"""The board lab: a Raspberry Pi OS-like root (Debian bookworm, arm64 or armhf) run under qemu-user on this host.

Nothing here has a board; what it has is the boards' instruction sets. Debian's ``qemu-user-static`` runs Arm
binaries through binfmt_misc, and ``QEMU_CPU`` picks the core whose features qemu offers (``cortex-a53``: Pi
Zero 2 and Pi 3; ``cortex-a72``: Pi 4, no dot product; ``cortex-a76``: Pi 5, with it). ``debootstrap`` builds the
root from Debian's archive once; it is kept under ``~/.cache/edgekit/board-lab`` (``$EDGEKIT_CACHE/board-lab``)
in a folder named after its recipe, so a changed recipe builds a new root and an unchanged one is reused.

    python tools/board_lab.py root --arch arm64                   # build or reuse; print the root's folder
    python tools/board_lab.py run --arch arm64 --cpu cortex-a72 -- python3 -c 'import platform; print(platform.uname())'
    python tools/board_lab.py run --arch arm64 --cpu cortex-a76 --bind runtime:/src/runtime -- ls /src/runtime

An ``amd64`` root is the same minimal Debian for an x86-64 host, run natively (no qemu, no binfmt): a fresh
machine on which ``tests/tools/test_fresh_machine.py`` runs ``tools/dev.sh`` from a clean copy of the project.

``run`` starts the command in a private mount namespace (``unshare``), so its mounts (``/proc``, ``/dev``, the
binds) vanish with it; the host's ``/sys`` is left out on purpose (onnxruntime's cpuinfo crashes on it under
qemu), and the host's CA bundle and resolver are copied in so that pip reaches the package index. It needs root,
``qemu-user-static``, ``debootstrap`` and ``binfmt-support`` (``tools/dev.sh`` installs them on Debian); ``amd64``
needs only root and ``debootstrap``, on an x86-64 host.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: the CPU "model" of a root the host runs natively (amd64 on x86-64): no qemu, no QEMU_CPU
NATIVE = "host"
CACHE = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "board-lab"
MIRROR = os.environ.get("EDGEKIT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: Debian's architecture → qemu's binfmt entry and the CPU models that stand for boards
ARCHES = {
    "arm64": ("qemu-aarch64", ("cortex-a53", "cortex-a72", "cortex-a76")),
    # qemu-arm has no Cortex-A53/A72 model: cortex-a15 stands for what a Pi 3 or 4 offers a 32-bit OS (ARMv7-A, NEON)
    "armhf": ("qemu-arm", ("cortex-a7", "cortex-a15")),
    # the host's own instruction set: no emulation, the host's CPU (a fresh x86-64 machine, not a board)
    "amd64": ("", (NATIVE,)),
}
#: which board each CPU model stands for
BOARDS = {
    "cortex-a53": "Raspberry Pi Zero 2 / Pi 3",
    "cortex-a72": "Raspberry Pi 4",
    "cortex-a76": "Raspberry Pi 5",
    "cortex-a7": "Raspberry Pi 2",
    "cortex-a15": "ARMv7-A with NEON, as a Pi 3 or 4 runs 32-bit Raspberry Pi OS",
}
#: the host's CA bundle (pip is configured with it here); copied into the root at each run
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: where the kernel lists binfmt_misc's entries (qemu's, for the Arm roots)
BINFMT = Path("/proc/sys/fs/binfmt_misc")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(Exception):
    """What keeps the lab from building or running, said in one line with what to do."""


@dataclass(frozen=True)
class Recipe:
    """What a root is built from; its hash names the cached folder."""

    arch: str
    suite: str = "bookworm"
    variant: str = "minbase"
    #: Raspberry Pi OS Lite ships Python 3, venv and the CA certificates; pip comes from python3-venv's ensurepip
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates", "procps")
    #: bump when how a root is made changes in a way the fields above do not show
    version: int = 1

    def key(self) -> str:
        """``bookworm-arm64-<12 hex>``."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.suite}-{self.arch}-{digest}"


def check_host(arch: str) -> None:
    """Root, the tools and an enabled binfmt entry for ``arch``; :class:`LabError` naming what is missing."""
    if arch not in ARCHES:
        raise LabError(f"--arch {arch!r}: the lab has {', '.join(ARCHES)}")
    if os.geteuid() != 0:
        raise LabError("the board lab needs root (debootstrap, chroot, mounts): run it as root")
    for tool, package in (("debootstrap", "debootstrap"), ("unshare", "util-linux"), ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            raise LabError(f"no {tool}: apt-get install {package}")
    if not ARCHES[arch][0]:
        if platform.machine() != "x86_64":
            raise LabError(f"the {arch} root runs natively, on an x86-64 host; this one is {platform.machine()}")
        return
    entry = BINFMT / ARCHES[arch][0]
    if not entry.exists():
        raise LabError(
            f"binfmt_misc has no {entry.name}: apt-get install qemu-user-static binfmt-support, then "
            f"mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable {entry.name}"
        )
    if not entry.read_text().startswith("enabled"):
        raise LabError(f"binfmt_misc's {entry.name} is disabled: update-binfmts --enable {entry.name}")


def root(recipe: Recipe, *, log: bool = True) -> Path:
    """The recipe's root: the cached one, or one built now (into a scratch folder, renamed when complete)."""
    check_host(recipe.arch)
    folder = CACHE / recipe.key()
    if (folder / "lab-recipe.json").exists():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{recipe.key()}-", dir=CACHE))
    started = time.monotonic()
    argv = [
        "debootstrap",
        f"--arch={recipe.arch}",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(scratch),
        MIRROR,
    ]
    if log:
        print(f"board lab: building {recipe.key()} with debootstrap (several minutes, once)", file=sys.stderr)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        shutil.rmtree(scratch, ignore_errors=True)
        raise LabError(f"debootstrap {recipe.arch} failed ({' / '.join(tail)}): check {MIRROR} is reachable")
    (scratch / "lab-recipe.json").write_text(json.dumps({**asdict(recipe), "built_s": time.monotonic() - started}))
    try:
        scratch.rename(folder)
    except OSError:
        if not (folder / "lab-recipe.json").exists():
            raise
        shutil.rmtree(scratch, ignore_errors=True)  # another build of the same recipe finished first: use it
    return folder


def command_line(
    folder: Path,
    cpu: str,
    argv: list[str],
    *,
    binds: list[tuple[Path, str]],
    env: dict[str, str],
    layer: Path | None = None,
    read_only: list[tuple[Path, str]] | None = None,
) -> list[str]:
    """The host command that runs ``argv`` in ``folder`` as CPU ``cpu``: a private mount namespace, then chroot.

    With ``layer`` the root is the cached one under an overlay whose changes go to ``layer`` (kept between runs
    that name the same layer; the cached root itself stays as debootstrap made it). ``read_only`` binds are
    remounted read-only. A native root (``cpu`` :data:`NATIVE`) gets ``/sys`` and no ``QEMU_CPU``.
    """
    q = shlex.quote
    mounts: list[str] = []
    top = folder
    if layer is not None:
        top = layer / "merged"
        for part in ("upper", "work", "merged"):
            (layer / part).mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={folder},upperdir={layer / 'upper'},workdir={layer / 'work'}"
        mounts.append(f"mount -t overlay overlay -o {q(options)} {q(str(top))}")
    mounts += [f"mount -t proc proc {q(str(top / 'proc'))}", f"mount --rbind /dev {q(str(top / 'dev'))}"]
    if cpu == NATIVE:
        mounts.append(f"mount -t sysfs sysfs {q(str(top / 'sys'))}")
    for source, target in binds:
        inside = top / target.lstrip("/")
        mounts.append(f"mkdir -p {q(str(inside))} && mount --bind {q(str(source))} {q(str(inside))}")
    for source, target in read_only or []:
        there = q(str(top / target.lstrip("/")))
        mounts.append(f"mkdir -p {there} && mount --bind {q(str(source))} {there} && mount -o remount,bind,ro {there}")
    variables = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **env}
    if cpu != NATIVE:
        variables["QEMU_CPU"] = cpu
    chroot = ["chroot", str(top), "env", "-i", *(f"{k}={v}" for k, v in variables.items()), *argv]
    script = " && ".join([*mounts, "exec " + shlex.join(chroot)])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def prepare(folder: Path) -> None:
    """What a run needs from the host: its CA bundle (pip's trust) and its resolver.

    ``folder`` is a root, or the upper folder of a layer over one (the cached root then stays untouched).
    """
    if CA_BUNDLE.exists():
        (folder / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CA_BUNDLE, folder / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    resolv = folder / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)


def run(
    recipe: Recipe,
    cpu: str,
    argv: list[str],
    *,
    binds: list[tuple[Path, str]] | None = None,
    env: dict[str, str] | None = None,
    layer: Path | None = None,
    read_only: list[tuple[Path, str]] | None = None,
    timeout: float | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``argv`` in the recipe's root as CPU ``cpu`` (over ``layer``, when given); its exit code and output."""
    if cpu not in ARCHES[recipe.arch][1]:
        raise LabError(f"--cpu {cpu!r}: for {recipe.arch} the lab has {', '.join(ARCHES[recipe.arch][1])}")
    folder = root(recipe)
    prepare(folder if layer is None else layer / "upper")
    line = command_line(folder, cpu, argv, binds=binds or [], env=env or {}, layer=layer, read_only=read_only)
    return subprocess.run(line, capture_output=capture, text=True, check=False, timeout=timeout)


def illegal_instruction(result: subprocess.CompletedProcess[str], cpu: str) -> str | None:
    """A line naming the CPU model when ``result`` died of SIGILL (an instruction that core lacks), else ``None``."""
    if result.returncode not in (-signal.SIGILL, 128 + signal.SIGILL):
        return None
    board = BOARDS.get(cpu, "this core")
    return (
        f"illegal instruction under QEMU_CPU={cpu} ({board}): the program uses an instruction {cpu} does not have; "
        "a build for a newer core (armv8.2 dot product, say) will crash the same way on the board"
    )


def _bind(text: str) -> tuple[Path, str]:
    source, _, target = text.partition(":")
    if not target.startswith("/"):
        raise argparse.ArgumentTypeError(f"--bind {text!r}: give HOST_PATH:/PATH_IN_ROOT")
    return Path(source).resolve(), target


def main(argv: list[str] | None = None) -> int:
    """``root`` or ``run``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("root", "run"):
        one = sub.add_parser(name)
        one.add_argument("--arch", default="arm64", choices=sorted(ARCHES))
        if name == "run":
            one.add_argument("--cpu", help="cortex-a72 for arm64, cortex-a15 for armhf, host for amd64")
            one.add_argument("--bind", type=_bind, action="append", default=[], help="HOST_PATH:/PATH_IN_ROOT")
            one.add_argument("argv", nargs="+", help="the command, after --")
    args = parser.parse_args(argv)
    try:
        recipe = Recipe(args.arch)
        if args.what == "root":
            print(root(recipe))
            return 0
        cpu = args.cpu or {"arm64": "cortex-a72", "armhf": "cortex-a15", "amd64": NATIVE}[args.arch]
        result = run(recipe, cpu, args.argv, binds=args.bind, capture=False)
        why = illegal_instruction(result, cpu)
        if why:
            print(f"error: {why}", file=sys.stderr)
        return result.returncode if result.returncode >= 0 else 128 - result.returncode
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
