"""``edgekit compress --target``: a board's profile applied to the options, and what the report says of it.

The profiles live in the runtime (:mod:`edgekit_runtime.targets`), which serves with the same ones. Here a
profile fills in what the user left open: ``reduce_range`` (:func:`for_target`), the latency threads
(:func:`threads`) and the modes the automatic search leaves out (:func:`searched`, for
:func:`edgekit.compress.onnx_output.candidates`). Latency is still measured on this machine; the report
says so, with the threads used.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.auto import Candidate
    from edgekit.compress.options import CompressOptions
    from edgekit_runtime.cpu import CpuInfo


def for_target(options: CompressOptions) -> CompressOptions:
    """``options`` with the target's ``reduce_range`` where the user set none."""
    target = options.target
    if target is None:
        return options
    static, dynamic = options.static, options.dynamic
    if static.reduce_range is None:
        static = dataclasses.replace(static, reduce_range=target.reduce_range)
    if dynamic.reduce_range is None:
        dynamic = dataclasses.replace(dynamic, reduce_range=target.reduce_range)
    return dataclasses.replace(options, static=static, dynamic=dynamic)


def searched(options: CompressOptions, candidates: list[Candidate]) -> list[Candidate]:
    """The automatic search's candidates, less the modes the target avoids."""
    avoid = options.target.avoid_modes if options.target is not None else ()
    return [c for c in candidates if c.pass_name not in avoid]


def threads(options: CompressOptions, cpu: CpuInfo) -> int:
    """Latency threads: ``--threads``, else the target's cut to this machine's cores, else the cores up to 4."""
    if options.threads is not None:
        return options.threads
    if options.target is not None:
        return options.target.threads_here(cpu.cores)
    return default_threads(cpu)


def default_threads(cpu: CpuInfo) -> int:
    """Edge boards have four cores or fewer; never time with more threads than they have."""
    return max(1, min(4, cpu.cores))


def on_host(options: CompressOptions, cpu: CpuInfo, threads: int) -> list[str]:
    """With a target: where the latency figures come from, and what they are not."""
    target = options.target
    if target is None:
        return []
    cut = f", not its {target.threads}: this machine has {cpu.cores} cores" if threads < target.threads else ""
    return [
        (
            f"latency was measured on this machine ({cpu.describe()}) with {threads} threads for --target "
            f"{target.name}{cut}; for the board's own figures run edgekit-runtime bench --target {target.name} on it"
        )
    ]


def note(options: CompressOptions, threads: int) -> dict[str, Any] | None:
    """The report's ``target``: the profile, and the threads latency was measured with here."""
    if options.target is None:
        return None
    return options.target.to_json() | {"threads_used": threads}
