"""Measure the graph clean-up engines side by side, to choose edgekit's default.

For each model: node count, size, ONNX Runtime latency at batch 1 (interleaved, same threads)
and the largest output difference from the untouched graph, for ``none``, ``onnxslim`` and
``ort-basic``. Run: ``.venv/bin/python tools/bench_cleanup.py`` (figures in docs/compress.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgekit.data import synthesize
from edgekit.graph_stats import graph_inputs
from edgekit.measure.latency import LatencyBudget, measure_interleaved
from edgekit.measure.session import OrtRunner
from edgekit.model_io import load_model
from edgekit.passes import Cleanup, CleanupConfig, Validate
from edgekit.passes.base import PassContext
from edgekit.passes.cleanup import CLEANUP_METHODS
from edgekit_runtime.cpu import host_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import fetch

ROOT = Path(__file__).resolve().parents[1]
#: fixed sizes for the free dimensions of the OCR models
SHAPES = {"det": (1, 3, 320, 320), "rec": (1, 3, 48, 320), "cls": (1, 3, 48, 192)}


def models(names: list[str]) -> dict[str, Path]:
    """The bundled digits models plus the fetched OCR models."""
    found = {"digits-cnn": ROOT / "examples/digits/cnn.onnx", "digits-mlp": ROOT / "examples/digits/mlp.onnx"}
    found.update(fetch(names))
    return found


def main() -> None:
    """Print one table row per model and engine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ocr", default="det,rec,cls", help="OCR models to fetch and include")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    table = Table(title=f"graph clean-up, {host_cpu().describe()}, {args.threads} thread(s)")
    for col in ("model", "engine", "nodes", "size KiB", "p50 b1 ms", "vs none", "max |Δ| vs none"):
        table.add_column(col)
    budget = LatencyBudget(warmup=5, min_runs=30, max_runs=400, seconds=3.0, rounds=5)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = PassContext(workdir=Path(tmp), cpu=host_cpu())
        for name, path in models([n for n in args.ocr.split(",") if n]).items():
            base = Validate().run(load_model(path).model, ctx).model
            specs = graph_inputs(base)
            shape = SHAPES.get(name)
            data = synthesize(specs, samples=1, shapes={specs[0].name: shape} if shape else None)
            feeds = data.batches(1)[0]
            variants = [(m, Cleanup(CleanupConfig(method=m)).run(base, ctx).model) for m in CLEANUP_METHODS]
            runners = [OrtRunner(v.SerializeToString(), threads=args.threads) for _, v in variants]
            outputs = [r.run(feeds) for r in runners]
            latencies = measure_interleaved(runners, feeds, budget)
            ref_index = [m for m, _ in variants].index("none")
            for i, (method, model) in enumerate(variants):
                diff = max(float(np.max(np.abs(a - b))) for a, b in zip(outputs[i], outputs[ref_index], strict=True))
                table.add_row(
                    name,
                    method,
                    str(len(model.graph.node)),
                    f"{model.ByteSize() / 1024:.1f}",
                    f"{latencies[i].p50_ms:.3f}",
                    f"{latencies[ref_index].p50_ms / latencies[i].p50_ms:.2f}x",
                    f"{diff:.2e}",
                )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
