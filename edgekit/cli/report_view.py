"""The compress report as a rich table and one closing line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from edgekit.cli.output import human_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from edgekit.report import ModelMeasurement, Report


def _fidelity(m: ModelMeasurement) -> str:
    f = m.headline_fidelity
    if f is None:
        return "reference"
    label = {
        "top1_agreement": "top-1",
        "label_agreement": "labels",
        "relative_agreement": "1-rel.err",
        "cosine": "cos",
    }[f.headline]
    value = f"{f.value:.2%}" if f.headline != "cosine" else f"{f.value:.5f}"
    return f"{label} {value}"


def _max_error(m: ModelMeasurement) -> str:
    f = m.headline_fidelity
    return "" if f is None or f.max_abs_error is None else f"{f.max_abs_error:.3g}"


def render(report: Report, console: Console) -> None:
    """Print the table of the original and every variant, then the warnings."""
    orig = report.original
    big = max((lat.batch for lat in orig.latency), default=1)
    table = Table(
        title=f"edgekit compress: {report.source}  ({report.cpu}; {report.threads} threads)",
        title_justify="left",
    )
    small = min((lat.batch for lat in orig.latency), default=1)
    cols = ["model", "size", "zipped", "vs original", f"p50 b{small}", f"p99 b{small}"]
    cols += [f"p50 b{big}"] if big != small else []
    for col in [*cols, "fidelity", "max |Δ|", "accuracy"]:
        table.add_column(col, justify="left" if col in {"model", "fidelity"} else "right")
    for m in [orig, *report.variants]:
        b1 = m.latency_at(small)
        bn = [m.latency_at(big)] if big != small else []
        acc = "" if m.accuracy is None else f"{m.accuracy:.2%}"
        name = f"[bold]{m.name}[/] (result)" if m.name == report.chosen else m.name
        table.add_row(
            name,
            human_bytes(m.size.raw),
            human_bytes(m.size.zipped),
            f"{m.size.raw / orig.size.raw:.0%}",
            f"{b1.p50_ms:.3f} ms" if b1 else "-",
            f"{b1.p99_ms:.3f} ms" if b1 else "-",
            *[f"{lat.p50_ms:.3f} ms" if lat else "-" for lat in bn],
            _fidelity(m),
            _max_error(m),
            acc,
        )
    console.print(table)
    notes = report.data["fidelity_inputs"]
    console.print(f"fidelity measured on {notes['samples']} samples from {notes['source']}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)


def summary_line(report: Report, out_dir: Path) -> str:
    """The last line: where the result is and what it gained and cost."""
    orig, chosen = report.original, report.chosen_variant
    parts = [f"{chosen.size.raw / orig.size.raw:.0%} of the original size"]
    big = max(lat.batch for lat in orig.latency)
    ob, cb = orig.latency_at(big), chosen.latency_at(big)
    if ob and cb:
        parts.append(f"{ob.p50_ms / cb.p50_ms:.2f}x speed at batch {big}")
    if chosen.accuracy is not None and orig.accuracy is not None:
        parts.append(f"accuracy {chosen.accuracy:.2%} ({(chosen.accuracy - orig.accuracy) * 100:+.2f} points)")
    elif chosen.headline_fidelity is not None:
        parts.append(_fidelity(chosen))
    return f"wrote {out_dir / 'model.onnx'} ({chosen.name}): " + ", ".join(parts)
