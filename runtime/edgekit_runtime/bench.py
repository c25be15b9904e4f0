"""The bench JSON (``edgekit-runtime bench``, docs/bench.schema.json) as the table the command prints.

What is measured, and the JSON itself, is :mod:`edgekit_runtime.bench_measure`; the command is
:mod:`edgekit_runtime.cli.bench`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def mib(n: float) -> str:
    """``90177536`` → ``86.0 MiB``."""
    return f"{n / (1 << 20):.1f} MiB"


def render(doc: Mapping[str, Any]) -> str:
    """The bench JSON as a table and two lines."""
    model = doc["model"]
    engine = f"{model['backend']} {model['backend_version'] or ''}".strip()
    lines = [
        f"{model['name']} {model['version']} on {doc['device']}: {engine} ({', '.join(model['devices'])})",
        f"  {doc['platform']['arch']}, {doc['platform']['cores']} cores, Python {doc['platform']['python']}",
        "",
        f"{'':<11}{'threads':>7}{'batch':>7}{'calls':>9}{'p50 ms':>10}{'p99 ms':>10}{'samples/s':>12}",
    ]
    rows = [("latency", t) for t in doc["latency"]] + [("throughput", doc["throughput"])]
    lines += [
        f"{kind:<11}{t['threads']:>7}{t['batch']:>7}{t['calls']:>9}{t['p50_ms']:>10.3f}{t['p99_ms']:>10.3f}"
        f"{t['samples_per_s']:>12.1f}"
        for kind, t in rows
    ]
    lines.append("")
    if doc["memory"] and doc["cold_start"]:
        cold = doc["cold_start"]
        lines.append(
            f"memory      {mib(doc['memory']['rss_bytes'])} RSS (peak {mib(doc['memory']['hwm_bytes'])}): the serve "
            "process after its first answer"
        )
        lines.append(
            f"cold start  {cold['ready_s']:.2f} s to ready, {cold['first_answer_s']:.2f} s to the first answer "
            f"(median of {cold['runs']} fresh serve processes)"
        )
    else:
        lines.append("cold start  not measured (--cold-starts 0)")
    return "\n".join(lines)
