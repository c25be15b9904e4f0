"""Smoke test of tools/bench_telemetry.py: a short run measures every variant and case and loses no window."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_telemetry.py"
WINDOWS = 60


@pytest.mark.slow
def test_quick_run_measures_every_variant_and_loses_no_window(tmp_path):
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: apt-get install wrk (the benchmark loads the server with it)")
    out = tmp_path / "bench_telemetry.json"
    argv = [sys.executable, str(TOOL), "--quick", "--duration", "1", "--windows", str(WINDOWS), "--json", str(out)]
    if len(os.sched_getaffinity(0)) < 2:  # the default pins servers and load to two CPUs
        argv.append("--no-pin")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    report = json.loads(out.read_text())

    serving = {v["variant"]: v for v in report["serving"]}
    assert set(serving) == {"off", "on", "mqtt"}
    for v in serving.values():
        assert v["median_rps"] > 0, v
        assert v["cpu_ms_per_request"] > 0, v
        assert v["load"]["p99_ms"] > 0, v
        assert v["load"]["errors"] == v["load"]["status_errors"] == 0, v
    for key in ("on", "mqtt"):
        assert serving[key]["ratio_to_off"] > 0
        assert serving[key]["windows"] >= 1, serving[key]
        # every request wrk completed was counted in a window (the readiness probe too)
        assert serving[key]["requests_counted"] >= serving[key]["requests_sent"], serving[key]
    assert serving["mqtt"]["left_in_outbox"] == 0

    drain = {r["case"]: r for r in report["drain"]}
    assert set(drain) == {"raw", "packed", "unpacked"}
    for r in drain.values():
        assert r["error"] == "", r
        assert r["windows"] == r["received_windows"] == WINDOWS, r
        assert r["lost"] == 0, r
        assert r["windows_per_s"] > 0, r
    assert drain["raw"]["messages"] == drain["unpacked"]["messages"] == WINDOWS
    assert drain["packed"]["messages"] < WINDOWS  # a backlog goes in batch messages

    assert report["machine"]["mosquitto"].startswith("mosquitto version")
    assert report["command"].startswith("python tools/bench_telemetry.py --quick")
    assert "| telemetry + MQTT |" in done.stdout
