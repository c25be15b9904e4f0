"""Benchmark edgekit's TFLite writer: ONNX Runtime and LiteRT, FP32 and INT8, in one run, one thread, batch 1.

For each model the bench

1. cleans the graph up as ``edgekit compress`` does (validate, onnxslim);
2. makes the ORT INT8 model with edgekit's static INT8 pass (QDQ, per channel, its CPU-chosen defaults) and
   the LiteRT FP32 and INT8 models with :func:`edgekit.tflite.convert` (INT8 scales from the static pass run
   with int8 activations), all calibrated on the same samples;
3. runs every variant on the same evaluation samples and reports the top-1 agreement of its class output
   with ORT FP32 (the original model file), and the max abs error over that output's range;
4. times the four at batch 1 with one thread, in turns (``measure_interleaved``, each with its feeds in its
   own layout), so they share the machine's noise; sizes are the files' bytes. Ratios are to ORT FP32 in the
   same run.

onnx2tf (TensorFlow's converter route) is compared only when a separate environment has it: pass
``--onnx2tf-python /path/to/venv/bin/python`` (onnx2tf pins TensorFlow, which this project does not
install); otherwise the output says it was skipped.

Models: the digits CNN (``examples/digits``), MTCNN's R-Net and O-Net and the PP-OCR orientation
classifier (fetched by ``tools/fetch_models.py``), fed their own test data, LFW crops
(``tools/mtcnn_data.py``) and rendered text lines (``tools/ppocr_data.py``). Usage::

    python tools/bench_tflite.py [--models cnn,rnet,onet,cls] [--seconds 3] [--samples 200] [--json OUT]
                                 [--markdown] [--onnx2tf-python PY] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from edgekit import passes
from edgekit.errors import EdgekitError
from edgekit.measure import latency
from edgekit.measure.litert import LiteRtRunner
from edgekit.measure.session import OrtRunner
from edgekit.model_io import model_bytes
from edgekit.passes.base import PassContext
from edgekit.pipeline import Pipeline
from edgekit.tflite import TFLiteConfig, convert
from edgekit.tflite.calibrate import static_qdq
from edgekit_runtime.cpu import host_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import default_cache, fetch  # tools/ is not a package: import it by path

if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
MODELS = ("cnn", "rnet", "onet", "cls")
VARIANTS = ("ORT FP32", "ORT INT8", "LiteRT FP32", "LiteRT INT8")
_CALIB_SAMPLES = 64
_CALIB_BATCH = 16


@dataclass
class Case:
    """A model, its data, and which output holds its classes."""

    key: str
    title: str
    model: onnx.ModelProto
    path: Path
    calib: np.ndarray
    eval: np.ndarray
    output: str


@dataclass
class Result:
    """One variant of one model."""

    model: str
    variant: str
    engine: str
    bytes: int
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    top1: float | None = None
    max_error: float | None = None
    size_ratio: float = 1.0
    latency_ratio: float = 1.0
    error: str = ""


@dataclass
class Run:
    """Everything one run found, and how it was made."""

    date: str
    command: str
    machine: str
    versions: dict[str, str]
    onnx2tf: str
    results: list[Result] = field(default_factory=list)


def cases(keys: list[str], cache: Path | None, samples: int) -> list[Case]:
    """Fetch models and make data for the chosen cases, in the order asked."""
    import mtcnn_data
    import mtcnn_nets
    import ppocr_data

    fetched = fetch(
        [k for k in keys if k in {"rnet", "onet", "cls"}] + (["lfw"] if {"rnet", "onet"} & set(keys) else []), cache
    )
    out = []
    for key in keys:
        if key == "cnn":
            test, calib = np.load(DIGITS / "cnn_test.npz"), np.load(DIGITS / "cnn_calib.npz")
            path = DIGITS / "cnn.onnx"
            out.append(Case(key, "digits CNN", onnx.load(str(path)), path, calib["input"][:_CALIB_SAMPLES],
                            test["input"][:samples], "logits"))  # fmt: skip
        elif key in {"rnet", "onet"}:
            size = mtcnn_nets.INPUT_SHAPES[key][-1]
            crops, _ = mtcnn_data.crops(fetched["lfw"], size, samples, np.random.default_rng(0))
            calib, _ = mtcnn_data.crops(fetched["lfw"], size, _CALIB_SAMPLES, np.random.default_rng(1))
            path = fetched[key]
            title = f"MTCNN {'R' if key == 'rnet' else 'O'}-Net ({size}x{size})"
            out.append(Case(key, title, onnx.load(str(path)), path, calib, crops, mtcnn_nets.PROBABILITY_OUTPUT[key]))
        elif key == "cls":
            path = fetched["cls"]
            evaluation = ppocr_data.cls_data(np.random.default_rng(0), samples)["inputs"]
            calib = ppocr_data.cls_data(np.random.default_rng(1), _CALIB_SAMPLES)["inputs"]
            out.append(
                Case(
                    key,
                    "PP-OCR cls (48x192)",
                    onnx.load(str(path)),
                    path,
                    calib,
                    evaluation,
                    "save_infer_model/scale_0.tmp_1",
                )
            )
        else:
            raise SystemExit(f"unknown model '{key}': choose from {', '.join(MODELS)}")
    return out


class _Bound:
    """A runner that always runs its own feeds (each variant is timed in its own layout)."""

    def __init__(self, runner: OrtRunner | LiteRtRunner, feeds: Mapping[str, np.ndarray]) -> None:
        self.runner, self.feeds = runner, dict(feeds)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:  # noqa: ARG002  (its own feeds)
        return self.runner.run(self.feeds)


def bench_case(case: Case, seconds: float, work: Path) -> list[Result]:
    """The four variants of one model, measured."""
    name = case.model.graph.input[0].name
    batches = [{name: case.calib[i : i + _CALIB_BATCH]} for i in range(0, len(case.calib), _CALIB_BATCH)]
    ctx = PassContext(workdir=work, cpu=host_cpu(), calibration=batches)
    prep = Pipeline([passes.create(passes.Validate.name), passes.create(passes.Cleanup.name)])
    prepared, _ = prep.run(case.model, ctx)
    ort_int8, _ = Pipeline([passes.create(passes.QuantizeStatic.name)]).run(prepared, ctx)
    shapes = {name: (1, *case.eval.shape[1:])}  # TFLite shapes are static: the data's (PP-OCR's are free)
    fp32 = convert(prepared, TFLiteConfig(input_shapes=shapes))
    qdq = static_qdq(prepared, batches)
    int8 = convert(prepared, TFLiteConfig(variant="int8", input_shapes=shapes), calibration=batches, qdq=qdq)
    ort = {"ORT FP32": case.path.read_bytes(), "ORT INT8": model_bytes(ort_int8)}
    tflite = {"LiteRT FP32": fp32, "LiteRT INT8": int8}
    eval_feeds = {name: case.eval}
    runners: dict[str, _Bound] = {}
    outputs: dict[str, np.ndarray] = {}
    results = {v: Result(case.title, v, "onnxruntime", len(data)) for v, data in ort.items()}
    results |= {v: Result(case.title, v, "litert", len(m.data)) for v, m in tflite.items()}
    for variant, data in ort.items():
        runner = OrtRunner(data, threads=1, label=variant)
        by_name = dict(zip(runner.output_names, runner.run(eval_feeds), strict=True))
        outputs[variant] = by_name[case.output]
        runners[variant] = _Bound(runner, {name: case.eval[:1]})
    for variant, model in tflite.items():
        lite = LiteRtRunner(model, threads=1, label=variant)
        by_name = dict(zip(lite.output_names, lite.run_onnx([eval_feeds]), strict=True))
        outputs[variant] = by_name[case.output]
        runners[variant] = _Bound(lite, lite.model_feeds({name: case.eval[:1]}))
    budget = latency.LatencyBudget(warmup=20, min_runs=50, max_runs=100_000, seconds=seconds, rounds=5)
    timed = latency.measure_interleaved(list(runners.values()), {name: case.eval[:1]}, budget)  # batch 1
    reference = outputs["ORT FP32"]
    spread = float(reference.max() - reference.min()) or 1.0
    for (variant, result), lat in zip(results.items(), timed, strict=True):
        result.top1 = float((outputs[variant].argmax(axis=1) == reference.argmax(axis=1)).mean())
        result.max_error = float(np.abs(outputs[variant].astype(np.float64) - reference).max()) / spread
        result.p50_ms, result.p99_ms = lat.p50_ms, lat.p99_ms
    base = results["ORT FP32"]
    for result in results.values():
        result.size_ratio = result.bytes / base.bytes
        result.latency_ratio = result.p50_ms / base.p50_ms if base.p50_ms else 1.0
    return list(results.values())


def onnx2tf_case(case: Case, python: str, seconds: float, work: Path) -> Result:
    """onnx2tf's FP32 ``.tflite`` of the same model, from another environment, timed in this one's LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    out = work / f"onnx2tf-{case.key}"
    cmd = [python, "-m", "onnx2tf", "-i", str(case.path), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    found = sorted(out.glob("*_float32.tflite"))
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no *_float32.tflite written"])[-1]
        return Result(case.title, "onnx2tf FP32", "litert", 0, error=tail[:200])
    data = found[0].read_bytes()
    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.ascontiguousarray(case.eval[:1].transpose(0, 2, 3, 1), dtype=np.float32)

    class _Run:
        def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:  # noqa: ARG002
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            return []

    budget = latency.LatencyBudget(warmup=20, min_runs=50, max_runs=100_000, seconds=seconds, rounds=5)
    (lat,) = latency.measure_interleaved([_Run()], {"input": x}, budget)
    return Result(case.title, "onnx2tf FP32", "litert", len(data), lat.p50_ms, lat.p99_ms)


def markdown(run: Run) -> str:
    """The table for docs/benchmarks.md."""
    lines = [
        (
            "| model | variant | size (bytes) | size vs ORT FP32 | p50 b1 (ms) | latency vs ORT FP32 "
            "| top-1 vs ORT FP32 | max error / range |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in run.results:
        if r.error:
            lines.append(f"| {r.model} | {r.variant} | failed: {r.error} | | | | | |")
            continue
        top1 = "" if r.top1 is None else f"{r.top1:.2%}".replace("%", " %")
        error = "" if r.max_error is None else f"{r.max_error:.1e}"
        lines.append(
            f"| {r.model} | {r.variant} | {r.bytes:,} | {r.size_ratio:.2f}x | {r.p50_ms:.3f} | {r.latency_ratio:.2f}x "
            f"| {top1} | {error} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the table (and write JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per variant, in 5 turns [3]")
    parser.add_argument("--samples", type=int, default=200, help="evaluation samples per model [200]")
    parser.add_argument("--cache", type=Path, default=None, help=f"model cache [default: {default_cache()}]")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table only")
    parser.add_argument("--onnx2tf-python", default=None, help="a Python with onnx2tf, to compare its FP32 .tflite")
    parser.add_argument("--quick", action="store_true", help="the digits CNN only, 32 samples, 0.2 s (smoke test)")
    args = parser.parse_args(argv)
    keys = ["cnn"] if args.quick else [k.strip() for k in args.models.split(",") if k.strip()]
    seconds, samples = (0.2, 32) if args.quick else (args.seconds, args.samples)
    onnx2tf = (
        f"compared: {args.onnx2tf_python}"
        if args.onnx2tf_python
        else "skipped: no separate environment with onnx2tf (pass --onnx2tf-python PY to compare)"
    )
    run = Run(
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        command=shlex.join(["python", "tools/bench_tflite.py", *(argv if argv is not None else sys.argv[1:])]),
        machine=f"{host_cpu().describe()}, Python {platform.python_version()}",
        versions={p: version(p) for p in ("onnxruntime", "ai-edge-litert", "onnx", "tflite")},
        onnx2tf=onnx2tf,
    )
    with tempfile.TemporaryDirectory(prefix="bench-tflite-") as tmp:
        for case in cases(keys, args.cache, samples):
            start = time.perf_counter()
            try:
                run.results += bench_case(case, seconds, Path(tmp))
            except EdgekitError as exc:  # recorded in the table; the other models still run
                run.results.append(Result(case.title, "all", "", 0, error=str(exc)[:300]))
            if args.onnx2tf_python:
                run.results.append(onnx2tf_case(case, args.onnx2tf_python, seconds, Path(tmp)))
            print(f"{case.title}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(run), indent=2) + "\n", encoding="utf-8")
    if not args.markdown:
        print(f"{run.date}  {run.command}\n{run.machine}; {', '.join(f'{k} {v}' for k, v in run.versions.items())}")
        print("one thread, batch 1; ratios to ORT FP32 (the original model file) in this run")
    print(markdown(run))
    print(f"\nonnx2tf: {run.onnx2tf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
