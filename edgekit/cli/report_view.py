"""The compress report as a rich table and one closing line.

Text goes out as written (the consoles print no markup: a node name or ``[batch, 3]`` is never a style);
what this module styles itself is a :class:`Text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from edgekit.cli.output import human_bytes, labelled

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from edgekit.auto.result import AutoResult
    from edgekit.measure.latency import Latency
    from edgekit.report import ModelMeasurement, Report


def _threads(n: int | None) -> str:
    return f"{n} thread{'' if n == 1 else 's'}"


def _for(report: Report) -> str:
    return f"; for --target {report.target['name']}" if report.target is not None else ""


def _p50(lat: Latency) -> str:
    """The p50 and, when timed in rounds, ``±`` half the interquartile range of the per-round p50s, in %."""
    spread = f" ±{lat.spread_ms / lat.p50_ms:.1%}" if len(lat.rounds_ms) > 1 and lat.p50_ms > 0 else ""
    return f"{lat.p50_ms:.3f} ms{spread}"


def _fidelity(m: ModelMeasurement) -> str:
    f = m.headline_fidelity
    if f is None:
        return "reference"
    label = {
        "top1_agreement": "top-1",
        "label_agreement": "labels",
        "relative_agreement": "1-rel.err",
        "cosine": "worst cos",
    }[f.headline]
    value = f"{f.value:.2%}" if f.headline != "cosine" else f"{f.value:.5f}"
    return f"{label} {value}"


def _max_error(m: ModelMeasurement) -> str:
    f = m.headline_fidelity
    return "" if f is None or f.max_abs_error is None else f"{f.max_abs_error:.3g}"


def _search_of(report: Report, m: ModelMeasurement) -> AutoResult | None:
    """The budgeted choice a row belongs to: the TFLite one for ``.tflite`` variants."""
    tflite = report.tflite.auto if report.tflite is not None else None
    if m.engine == "litert":
        return tflite
    return report.auto or (tflite if m is report.original else None)


#: what a result is written as, per target
_RESULT_FILES = ("model.onnx", "model.tflite")


def _results(report: Report) -> set[str]:
    """The result of every target (``report.chosen`` is the first target's)."""
    return {report.chosen} | {v.name for v in report.variants if v.file in _RESULT_FILES}


def _engine(m: ModelMeasurement, report: Report) -> str:
    threads = m.threads if m.threads is not None else report.threads
    return f"{'LiteRT' if m.engine == 'litert' else 'ORT'} x{threads}"


def render(report: Report, console: Console) -> None:
    """Print the table of the original and every variant, then the warnings."""
    orig = report.original
    big = max((lat.batch for lat in orig.latency), default=1)
    table = Table(
        title=f"edgekit compress: {report.source}  ({report.cpu}; {_threads(report.threads)}{_for(report)})",
        title_justify="left",
    )
    small = min((lat.batch for lat in orig.latency), default=1)
    engines = any(v.engine != orig.engine for v in report.variants)  # ONNX Runtime and LiteRT side by side
    cols = ["model", *(["engine"] if engines else []), "size", "zipped", "vs original", f"p50 b{small}"]
    cols += [f"p99 b{small}", *([f"p50 b{big}"] if big != small else [])]
    searches = [s for s in (report.auto, report.tflite.auto if report.tflite else None) if s is not None]
    search = searches[0] if searches else None
    show_metric = search is not None and search.metric.name != "accuracy"  # accuracy has its own column
    metric_cols = ([search.metric.name] if search is not None and show_metric else []) + (["budget"] if search else [])
    for col in [*cols, "fidelity", "max |Δ|", "accuracy", *metric_cols]:
        table.add_column(col, justify="left" if col in {"model", "engine", "fidelity", "budget"} else "right")
    results = _results(report)
    for m in [orig, *report.variants]:
        b1 = m.latency_at(small)
        bn = [m.latency_at(big)] if big != small else []
        acc = "" if m.accuracy is None else f"{m.accuracy:.2%}"
        name = Text.assemble((m.name, "bold"), " (result)") if m.name in results else Text(m.name)
        row_search = _search_of(report, m)
        table.add_row(
            name,
            *([_engine(m, report)] if engines else []),
            human_bytes(m.size.raw),
            human_bytes(m.size.zipped),
            f"{m.size.raw / orig.size.raw:.0%}",
            _p50(b1) if b1 else "-",
            f"{b1.p99_ms:.3f} ms" if b1 else "-",
            *[_p50(lat) if lat else "-" for lat in bn],
            _fidelity(m),
            _max_error(m),
            acc,
            *(_metric_cells(row_search, m.name, show_value=show_metric) if row_search is not None else []),
            *([""] * len(metric_cols) if row_search is None and search is not None else []),
        )
    console.print(table)
    judged = next((v.fidelity for v in report.variants if v.fidelity), [])
    if judged:
        console.print("judged: " + "; ".join(f"{f.name} by {f.judged}" for f in judged), soft_wrap=True)
    for s in searches:
        _render_search(s, console, tflite=s is not report.auto)
    if report.tflite is not None and report.tflite.error is not None:
        console.print(labelled("tflite:", "red", report.tflite.error), soft_wrap=True)
    notes = report.data["fidelity_inputs"]
    console.print(f"fidelity measured on {notes['samples']} samples from {notes['source']}")
    for w in report.warnings:
        console.print(labelled("warning:", "yellow", w), soft_wrap=True)


#: nodes kept in float listed by name; report.json has them all
_SHOWN = 10


def _verdict(met: bool | None) -> Text:
    """``met`` in green, ``missed`` in red, nothing for a trial not judged."""
    return Text("") if met is None else Text("met", style="green") if met else Text("missed", style="red")


def _metric_cells(search: AutoResult, name: str, *, show_value: bool) -> list[str | Text]:
    value = search.scores.get(name)
    shown: list[str | Text] = [] if not show_value else [""] if value is None else [f"{value:.4g}"]
    if value is None or name in {"original", "fp32", "tflite-fp32"}:
        return [*shown, "baseline" if name == "original" else ""]
    met = search.budget.meets(value, search.baseline, higher_is_better=search.metric.higher_is_better)
    return [*shown, _verdict(met)]


def _render_search(search: AutoResult, console: Console, *, tflite: bool = False) -> None:
    """The trials, the sensitivity ranking's head, the nodes kept in float and why the result was chosen."""
    limit = search.budget.threshold(search.baseline, higher_is_better=search.metric.higher_is_better)
    sign = ">=" if search.metric.higher_is_better else "<="
    table = Table(
        title=f"search{' (TFLite)' if tflite else ''}: {search.metric.name} {sign} {limit:.4g} "
        f"(baseline {search.baseline:.4g}, "
        f"budget {search.budget.text})",
        title_justify="left",
    )
    cols = ("#", "candidate", "step", "kept in float", "size", "p50 b1 / largest", search.metric.name, "budget")
    for col in (*cols, "seconds", "note"):
        table.add_column(col, justify="left" if col in {"candidate", "step", "budget", "note"} else "right")
    for i, t in enumerate(search.trials, 1):
        budget = Text("failed", style="red") if t.failed else _verdict(t.meets_budget)
        table.add_row(
            str(i),
            t.candidate,
            t.step,
            str(len(t.excluded)) if t.excluded else "",
            human_bytes(t.size_bytes) if t.size_bytes is not None else "",
            " / ".join(_p50(lat) for lat in t.latency[:1] + t.latency[1:][-1:]),
            "" if t.metric is None else f"{t.metric:.4g}",
            budget,
            f"{t.seconds:.1f}",
            t.error or "",
        )
    console.print(table)
    for name, ranking in search.sensitivity.items():
        head = ", ".join(f"{s.node} ({s.op_type}, {s.sqnr_db:.1f} dB)" for s in ranking[:5])
        console.print(f"most sensitive in {name}: {head}", soft_wrap=True)
    for name, kept in search.kept_float.items():
        nodes = ", ".join(k.sensitivity.node for k in kept[:_SHOWN])
        nodes += f" and {len(kept) - _SHOWN} more" if len(kept) > _SHOWN else ""
        console.print(f"{name} keeps {len(kept)} node(s) in float: {nodes}", soft_wrap=True)
    if search.stopped:
        console.print(f"search stopped: {search.stopped}", soft_wrap=True)
    for note in search.choice:
        console.print(f"{'tflite ' if tflite else ''}choice: {note}", soft_wrap=True)


def summary_line(report: Report, out_dir: Path) -> str:
    """The last line (a line per result with ``--to onnx,tflite``): where it is, what it gained and cost."""
    results = [report.chosen] + [r for r in sorted(_results(report)) if r != report.chosen]
    by_name = {v.name: v for v in report.variants}
    return "\n".join(_result_line(report, by_name[name], out_dir) for name in results)


def _result_line(report: Report, chosen: ModelMeasurement, out_dir: Path) -> str:
    orig = report.original
    parts = [f"{chosen.size.raw / orig.size.raw:.0%} of the original size"]
    search = report.auto
    if chosen.engine == "litert":  # timed in LiteRT at batch 1: against the FP32 .tflite, not ONNX Runtime
        search = report.tflite.auto if report.tflite is not None else None
        base = next((v for v in report.variants if v.name == "tflite-fp32"), None)
        ob, cb = (base.latency_at(1) if base else None), chosen.latency_at(1)
        if ob and cb and base is not chosen:
            speedup = ob.p50_ms / cb.p50_ms
            parts.append(f"{speedup:.2f}x tflite-fp32's speed (LiteRT, batch 1, {_threads(chosen.threads)})")
        elif cb:
            parts.append(f"{cb.p50_ms:.3f} ms at batch 1 in LiteRT ({_threads(chosen.threads)})")
    else:
        big = max(lat.batch for lat in orig.latency)
        ob, cb = orig.latency_at(big), chosen.latency_at(big)
        if ob and cb:
            parts.append(f"{ob.p50_ms / cb.p50_ms:.2f}x speed at batch {big}")
    if chosen.accuracy is not None and orig.accuracy is not None:
        parts.append(f"accuracy {chosen.accuracy:.2%} ({(chosen.accuracy - orig.accuracy) * 100:+.2f} points)")
    elif chosen.headline_fidelity is not None:
        parts.append(_fidelity(chosen))
    line = f"wrote {out_dir / (chosen.file or 'model.onnx')} ({chosen.name}): " + ", ".join(parts)
    if search is None or search.verdict is None:
        return line
    v = search.verdict
    sign = ">=" if search.metric.higher_is_better else "<="
    tried = f"; nothing compressed within it: {'; '.join(v.tried)}" if v.tried else ""
    if v.met:
        met = f"({search.metric.name} {v.value:.4g} {sign} {v.threshold:.4g})"
        return f"{line}; budget {search.budget.text} met {met}{tried}"
    return (
        f"{line}\nBUDGET MISSED by {v.missed_by:.4g}: the best variant, {chosen.name}, reached {search.metric.name} "
        f"{v.value:.4g} where the {search.budget.text} budget needs {sign} {v.threshold:.4g}{tried}. Try: {v.advice}"
    )
