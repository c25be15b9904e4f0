"""``--target`` and ``--providers`` for ``serve`` and ``bench``: from flags to the engine's settings.

With ``--target``, a call gets the profile's threads (cut to the cores here) and, unless ``--concurrency``
says otherwise, one call runs at a time: a small board answers one request fastest with all its cores.
Without it, the defaults are throughput's: a call per core, one thread each. ``--threads`` and
``--concurrency`` win over both. ONNX Runtime's providers are ``--providers`` (all required), else the
target's where this build has them, else the best available; TensorRT keeps its engines in
``STATE_DIR/trt-cache``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from edgekit_runtime import targets
from edgekit_runtime.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import SimpleNamespace

    from edgekit_runtime.backends import BackendSettings
    from edgekit_runtime.platform_facts import Platform

#: short names ``--providers`` takes besides onnxruntime's own
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: where TensorRT's engines are kept, under the state directory
TRT_CACHE = "trt-cache"


def target(text: str) -> targets.Target:
    """A target profile's name."""
    try:
        return targets.get(text)
    except ConfigError:
        raise click.BadParameter(f"'{text}' is not a target: use one of {', '.join(targets.TARGETS)}") from None


def providers(text: str) -> tuple[str, ...]:
    """``tensorrt,cuda,cpu`` or onnxruntime's names (``CUDAExecutionProvider``), comma-separated."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("no provider named: use e.g. cuda,cpu")
    chosen = []
    for name in names:
        full = PROVIDER_NAMES.get(name.lower(), name)
        if not full.endswith("ExecutionProvider"):
            known = ", ".join(PROVIDER_NAMES)
            raise click.BadParameter(f"'{name}' is not an execution provider: use {known}, or a full name")
        chosen.append(full)
    return tuple(chosen)


class TargetName(click.ParamType):  # type: ignore[type-arg]  # generic in newer click, not in 8.1 (supported)
    """``--target NAME``: the profile."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:  # noqa: ANN401
        """The profile (one already found stays as it is)."""
        if isinstance(value, targets.Target):
            return value
        try:
            return target(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


class ProviderList(click.ParamType):  # type: ignore[type-arg]  # generic in newer click, not in 8.1 (supported)
    """``--providers LIST``: onnxruntime's provider names, in order."""

    name = "list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:  # noqa: ANN401
        """The full names (a tuple already made stays as it is)."""
        if isinstance(value, tuple):
            return value
        try:
            return providers(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--target`` and ``--providers``."""
    command = click.option(
        "--providers",
        type=ProviderList(),
        metavar="LIST",
        help="ONNX Runtime execution providers, all required, in order: tensorrt,cuda,cpu or onnxruntime's "
        "names (default: the target's where present, else the best this build has)",
    )(command)
    return click.option(
        "--target",
        type=TargetName(),
        metavar="NAME",
        help=f"a board's profile ({', '.join(targets.TARGETS)}): its threads per call and, on a Jetson, "
        "TensorRT/CUDA first (docs/targets.md)",
    )(command)


def cores_here() -> int:
    """The cores this process may use."""
    from edgekit_runtime.server.settings import available_cores  # no uvicorn import

    return available_cores()


def default_concurrency(args: SimpleNamespace, cores: int) -> int:
    """Calls at once: ``--concurrency``; with a target, as many as its threads leave cores for; else a core each."""
    if args.concurrency:
        return int(args.concurrency)
    chosen: targets.Target | None = args.target
    return max(1, cores // chosen.threads_here(cores)) if chosen is not None else cores


def engine_settings(args: SimpleNamespace, concurrency: int, cores: int, state_dir: Path) -> BackendSettings:
    """The engine's threads and providers from ``--threads``, ``--target`` and ``--providers``."""
    from edgekit_runtime.backends import BackendSettings, tensorrt_options

    chosen: targets.Target | None = args.target
    if args.threads:
        threads = int(args.threads)
    elif chosen is not None:
        threads = chosen.threads_here(cores)
    else:
        threads = max(1, cores // concurrency)
    return BackendSettings(
        threads=threads,
        providers=args.providers,
        prefer=chosen.providers if chosen is not None else None,
        provider_options=tensorrt_options(state_dir / TRT_CACHE),
    )


def mismatch_warnings(chosen: targets.Target | None, platform: Platform) -> list[str]:
    """``warning: …`` lines where the device is not what ``--target`` assumes (none without a target)."""
    if chosen is None:
        return []
    found = [
        f"warning: --target {chosen.name}: {m}" for m in targets.mismatches(chosen, platform.arch, platform.cpu_flags)
    ]
    fewer = targets.fewer_cores(chosen, platform.cores)
    return found + ([f"note: --target {chosen.name}: {fewer}"] if fewer else [])


def warn_mismatch(chosen: targets.Target | None, platform: Platform | None = None) -> None:
    """Print :func:`mismatch_warnings` for this device (its facts gathered here unless given) on stderr."""
    if chosen is None:
        return
    from edgekit_runtime.platform_facts import gather

    for line in mismatch_warnings(chosen, platform or gather(probe=False)):
        print(line, file=sys.stderr, flush=True)


def as_flags(args: SimpleNamespace) -> tuple[str, ...]:
    """``--target`` and ``--providers`` as given, for a ``serve`` process started with the same engine settings."""
    flags: tuple[str, ...] = ("--target", args.target.name) if args.target is not None else ()
    return flags + (("--providers", ",".join(args.providers)) if args.providers else ())


def provider_note(chosen: targets.Target | None, engine: str, devices: list[str]) -> list[str]:
    """Where the target wanted a GPU provider this build or device does not give: what runs instead, and the fix."""
    if chosen is None or engine != "onnxruntime":
        return []
    gpu = [p for p in chosen.providers if p != "CPUExecutionProvider"]
    if not gpu or any(p in devices for p in gpu):
        return []
    note = (
        f"note: --target {chosen.name} prefers {', '.join(gpu)}, which this onnxruntime build or device does "
        f"not give: running on {', '.join(devices)}; install onnxruntime-gpu for this JetPack (examples/jetson)"
    )
    return [note]
