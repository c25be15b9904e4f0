"""The rows of ``tools/bench_compress.py`` and how they print: a rich table, or Markdown for the docs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.cli.output import human_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from edgekit.measure.fidelity import OutputFidelity

MODE = "int8-static"


@dataclass(frozen=True)
class Case:
    """One benchmarked model with its data, ready to run."""

    key: str
    title: str
    model: Path
    calib: Path
    eval: Path
    #: ``--max-eval-samples`` for the CLI, and the samples this process evaluates on
    max_eval: int | None
    #: further CLI options that only bound the run's time (kept small)
    cli_args: tuple[str, ...] = ()
    #: CLI options that change the result; shown in the mode column
    mode_args: tuple[str, ...] = ()
    #: for probability maps: the threshold of the text mask whose IoU with FP32's is reported
    mask_threshold: float | None = None
    #: ``--budget`` of the auto-mode run
    budget: str = "1%"

    @property
    def mode(self) -> str:
        """What the mode column says."""
        return " ".join((MODE, *self.mode_args))

    @property
    def tag(self) -> str:
        """A name for this case's files and notes."""
        return " ".join([self.key, *self.mode_args])


@dataclass
class Variant:
    """Numbers for one model file, or the error that stopped it."""

    size: int | None = None
    p50_ms: float | None = None
    fidelity: OutputFidelity | None = None
    accuracy: float | None = None
    #: IoU of the thresholded first output with FP32's (detectors)
    mask_iou: float | None = None
    error: str | None = None
    note: str = ""


@dataclass
class Row:
    """One table row."""

    case: Case
    fp32: Variant
    edgekit: Variant
    baseline: Variant
    threads: int
    notes: list[str] = field(default_factory=list)
    #: the auto-mode run (``--budget``): its result and the search's verdict
    auto: Variant = field(default_factory=Variant)
    auto_chosen: str = ""
    verdict: dict[str, Any] | None = None


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


COLUMNS = (
    "model",
    "FP32 size",
    "edgekit mode",
    "edgekit size (% of FP32)",
    "baseline size (% of FP32)",
    "p50 b1 FP32 / edgekit / baseline (ms)",
    "speed vs FP32 edgekit / baseline",
    "fidelity edgekit / baseline",
    "accuracy FP32 / edgekit / baseline",
    "auto: result, size, speed, fidelity",
    "budget",
)


def _size(v: Variant, fp32: Variant) -> str:
    if v.size is None:
        return _error_cell(v)
    pct = f" ({v.size / fp32.size:.0%})" if fp32.size else ""
    return f"{human_bytes(v.size)}{pct}" + (f", {v.note}" if v.note else "")


def _error_cell(v: Variant) -> str:
    return f"error: {short(v.error, 70)}" if v.error else "-"


def fmt_ms(ms: float) -> str:
    """Milliseconds with three significant digits, or one decimal from 10 ms."""
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}"  # noqa: PLR2004


def _ms(v: Variant) -> str:
    return "-" if v.p50_ms is None else fmt_ms(v.p50_ms)


def _speed(v: Variant, fp32: Variant) -> str:
    return "-" if v.p50_ms is None or fp32.p50_ms is None else f"{fp32.p50_ms / v.p50_ms:.2f}x"


def _fid(v: Variant) -> str:
    f = v.fidelity
    if f is None:
        return "error" if v.error else "-"
    if f.headline == "cosine":
        return f"worst cos {f.value:.4f}" + ("" if v.mask_iou is None else f", mask IoU {v.mask_iou:.3f}")
    label = {"top1_agreement": "top-1", "label_agreement": "labels", "relative_agreement": "1-rel.err"}[f.headline]
    return f"{label} {f.value:.1%}"


def _acc(v: Variant) -> str:
    return "-" if v.accuracy is None else f"{v.accuracy:.1%}"


def cells(row: Row) -> list[str]:
    """The row's text, one string per column."""
    f, e, b = row.fp32, row.edgekit, row.baseline
    edge_size = _error_cell(e) if e.error and e.size is None else _size(e, f)
    return [
        row.case.title,
        human_bytes(f.size) if f.size else "-",
        row.case.mode,
        edge_size,
        _size(b, f),
        f"{_ms(f)} / {_ms(e)} / {_ms(b)}",
        f"{_speed(e, f)} / {_speed(b, f)}",
        f"{_fid(e)} / {_fid(b)}",
        "-" if f.accuracy is None else f"{_acc(f)} / {_acc(e)} / {_acc(b)}",
        _auto(row),
        _verdict(row),
    ]


def _auto(row: Row) -> str:
    a = row.auto
    if not row.auto_chosen:
        return _error_cell(a)
    parts = [row.auto_chosen, f"{a.size / row.fp32.size:.0%}" if a.size and row.fp32.size else "-"]
    parts += [_speed(a, row.fp32), _fid(a)] + ([f"acc {_acc(a)}"] if a.accuracy is not None else [])
    return ", ".join(parts)


def _verdict(row: Row) -> str:
    v = row.verdict
    if v is None:
        return "-"
    if v["met"]:
        return f"{row.case.budget} met"
    return f"{row.case.budget} missed by {v['missed_by']:.3g}"


def footnotes(rows: list[Row]) -> list[str]:
    """Per-row notes, then each error in full, one line each."""
    lines = []
    for row in rows:
        lines.append(f"{row.case.tag}: threads {row.threads}; " + "; ".join(row.notes))
        variants = (("FP32", row.fp32), ("edgekit", row.edgekit), ("auto", row.auto), ("baseline", row.baseline))
        for label, v in variants:
            if v.error:
                lines.append(f"{row.case.tag}: {label} error: {v.error}")
    return lines


def print_table(rows: list[Row], console: Console) -> None:
    """The rich table, then the notes."""
    from rich.table import Table

    table = Table(title="edgekit compress vs quantize_dynamic (defaults)", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in {"model", "edgekit mode"} else "right", overflow="fold")
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)
    for line in footnotes(rows):
        console.print(line, soft_wrap=True, markup=False)


def markdown(rows: list[Row]) -> str:
    """The same table in Markdown, notes as a list."""

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(esc(c) for c in cells(row)) + " |" for row in rows]
    lines += [""] + [f"- {esc(line)}" for line in footnotes(rows)]
    return "\n".join(lines)
