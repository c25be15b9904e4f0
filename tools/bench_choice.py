"""Does auto mode choose the same variant from run to run? The same ``edgekit compress`` command, N times.

For each model the bench runs ``python -m edgekit compress MODEL --budget ... --calib ... --eval ...`` (the
command and data of ``tools/bench_compress.py``'s auto column) ``--runs`` times, while a child process keeps
one core busy (``python -c 'while True: pass'``, started before the first run and stopped after the last), and
reports the variant chosen in each run, its size and its accuracy or fidelity from ``report.json``. The choice
is stable when every run of a model chose the same variant. ``--timing`` bounds each model's timing per batch
size (the CLI's option; the default here, 1.5 s, is the CLI's).

Usage::

    python tools/bench_choice.py [--models cls,cnn,mlp,det,rec,minilm,lstm] [--runs 5] [--timing 1.5] [--no-load]
                                 [--markdown]

The models and their data are ``tools/bench_cases.py``'s (``minilm``: the sentence encoder; ``lstm``: the
streaming Conv1d + LSTM classifier of ``tools/lstm_model.py``, trained here in seconds, compressed with its
sequence data; both need torch).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cases import CASES, model_keys, prepare  # tools/ is not a package: import it by path
from bench_compress import run_edgekit
from fetch_models import default_cache

if TYPE_CHECKING:
    from bench_table import Case


@dataclass
class Run:
    """One ``edgekit compress`` run: what it chose, and at what size and accuracy."""

    chosen: str | None
    seconds: float
    size_pct: float | None = None
    quality: str = ""
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Outcome:
    """Every run of one model."""

    case: Case
    runs: list[Run] = field(default_factory=list)

    @property
    def stable(self) -> bool:
        """Every run chose, and all chose the same."""
        return len({r.chosen for r in self.runs}) == 1 and self.runs[0].chosen is not None


#: report.json's fidelity metrics as the compress table prints them
_LABELS = {
    "top1_agreement": "top-1",
    "label_agreement": "labels",
    "relative_agreement": "1-rel.err",
    "cosine": "worst cos",
}


def _quality(variant: dict[str, Any]) -> str:
    parts = []
    if variant["accuracy"] is not None:
        parts.append(f"acc {variant['accuracy']:.2%}")
    if variant["fidelity"]:
        f = variant["fidelity"][0]
        label = _LABELS.get(f["metric"], f["metric"])
        parts.append(f"{label} {f['value']:.4f}" if f["metric"] == "cosine" else f"{label} {f['value']:.2%}")
    return ", ".join(parts)


def one_run(case: Case, out: Path, threads: int | None) -> Run:
    """The CLI in auto mode, and what its report.json says about the chosen variant."""
    report, error, seconds = run_edgekit(case, out, threads, auto=True)
    if report is None:
        return Run(None, seconds, error=error)
    chosen = next(v for v in report["variants"] if v["name"] == report["chosen"])
    size_pct = chosen["size"]["raw_bytes"] / report["original"]["size"]["raw_bytes"] * 100
    return Run(report["chosen"], seconds, size_pct, _quality(chosen), list(report["auto"]["choice"]))


def busy_core() -> subprocess.Popen[bytes]:
    """A child that keeps one core busy until stopped: the neighbour a shared machine always has."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def markdown(outcomes: list[Outcome], runs: int) -> str:
    """The table for docs/benchmarks.md."""
    head = ["model", *(f"run {i}" for i in range(1, runs + 1)), "same in all", "size, accuracy/fidelity (run 1)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes:
        cells = [r.chosen or f"error: {r.error}" for r in o.runs]
        first = o.runs[0]
        detail = f"{first.size_pct:.0f}%, {first.quality}" if first.size_pct is not None else "-"
        lines.append("| " + " | ".join([o.case.title, *cells, "yes" if o.stable else "**no**", detail]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every model ``--runs`` times under load; exit 1 when a model's choice changed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", default="cls,cnn,mlp", help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--runs", type=int, default=5, help="runs per model [5]")
    parser.add_argument("--timing", type=float, default=1.5, help="the CLI's --timing, seconds [1.5]")
    parser.add_argument("--threads", type=int, default=None, help="inference threads [default: edgekit's choice]")
    parser.add_argument("--cache", type=Path, default=None, help=f"model cache [default: {default_cache()}]")
    parser.add_argument("--det-size", type=int, default=320, help="side of the square detector input [320]")
    parser.add_argument("--no-load", action="store_true", help="do not start the busy child")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    keys = model_keys(parser, args.models)
    if args.runs < 1 or not args.timing > 0:
        parser.error("--runs must be at least 1 and --timing more than 0")
    start = time.perf_counter()
    outcomes = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that ``finally`` stops the busy child
    load = None if args.no_load else busy_core()
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-choice-") as tmp:
            work = Path(tmp)
            cases = prepare(keys, args.cache or default_cache(), work, args.det_size)
            for case in cases:
                timed = replace(case, cli_args=(*case.cli_args, "--timing", f"{args.timing:g}"))
                outcome = Outcome(case)
                for i in range(1, args.runs + 1):
                    run = one_run(timed, work / f"{case.key}-{i}", args.threads)
                    outcome.runs.append(run)
                    print(f"{case.key} run {i}: {run.chosen or run.error} ({run.seconds:.0f} s)", file=sys.stderr)
                    for note in run.notes:
                        print(f"    choice: {note}", file=sys.stderr)
                outcomes.append(outcome)
    finally:
        if load is not None:
            load.terminate()
            load.wait()
    for o in outcomes:
        chosen = ", ".join(r.chosen or "error" for r in o.runs)
        print(f"{o.case.title}: {chosen} -> {'stable' if o.stable else 'CHANGED'}")
    print(f"total {time.perf_counter() - start:.0f} s ({'one core kept busy' if load else 'no extra load'})")
    if args.markdown:
        print()
        print(markdown(outcomes, args.runs))
    return 0 if all(o.stable for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
