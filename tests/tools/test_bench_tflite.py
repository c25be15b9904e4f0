"""Smoke test of tools/bench_tflite.py: a quick run measures the four variants and says what it skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_tflite.py"


def test_quick_run_measures_ort_and_litert_fp32_and_int8(tmp_path):
    out = tmp_path / "bench_tflite.json"
    argv = [sys.executable, str(TOOL), "--quick", "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    run = json.loads(out.read_text())
    assert run["command"] == "python tools/bench_tflite.py --quick --json " + str(out)
    assert run["onnx2tf"].startswith("skipped: no separate environment with onnx2tf")
    assert "onnx2tf: skipped" in done.stdout
    results = {r["variant"]: r for r in run["results"]}
    assert list(results) == ["ORT FP32", "ORT INT8", "LiteRT FP32", "LiteRT INT8"]
    assert (results["ORT FP32"]["size_ratio"], results["ORT FP32"]["latency_ratio"]) == (1.0, 1.0)
    for r in results.values():
        assert r["model"] == "digits CNN"
        assert r["error"] == ""
        assert r["p50_ms"] > 0
        assert r["top1"] >= 0.95
    assert results["LiteRT INT8"]["size_ratio"] < 0.35
    assert results["LiteRT FP32"]["max_error"] < 1e-4
    assert "| digits CNN | LiteRT INT8 |" in done.stdout
