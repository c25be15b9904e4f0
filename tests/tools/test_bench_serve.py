"""Smoke test of tools/bench_serve.py: a short run of the runtime with two workers and the minimal app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_serve.py"


@pytest.mark.slow
def test_quick_run_loads_two_workers_and_counts_every_request(tmp_path):
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: apt-get install wrk (the benchmark loads the servers with it)")
    out = tmp_path / "bench_serve.json"
    servers = "edgekit-runtime-2w,uvicorn-minimal,granian-minimal"
    argv = [sys.executable, str(TOOL), "--quick", "--seconds", "1", "--servers", servers, "--json", str(out)]
    if len(os.sched_getaffinity(0)) < 2:  # the default pins servers and load to two CPUs
        argv.append("--no-pin")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    report = json.loads(out.read_text())
    by_key = {s["key"]: s for s in report["servers"]}
    assert set(by_key) == set(servers.split(","))
    for server in by_key.values():
        assert server["error"] is None, server
        cells = [(c["connections"], c["batch"]) for c in server["cells"]]
        assert cells == [(1, 1), (16, 1), (64, 1), (1, 32), (16, 32)]
        for cell in server["cells"]:
            assert cell["rps"] > 0, (server["key"], cell)
            assert cell["errors"] == cell["status_errors"] == 0, (server["key"], cell)
        assert server["check"] == "32/32 labels as scikit-learn", server
    two = by_key["edgekit-runtime-2w"]
    assert len(two["processes"]) == 2, two["processes"]  # the serving process and its worker
    assert 'edgekit_worker_requests_total{worker="1"}' in two["metrics"], two["metrics"]
