"""Smoke test of tools/fleet_sim.py: a few simulated devices, every window stored once by the real collector,
and a bundle rolled out to all of them over MQTT meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_simulation_loses_no_window(tmp_path):
    out = tmp_path / "sim.json"
    argv = [
        sys.executable,
        str(ROOT / "tools" / "fleet_sim.py"),
        *("--devices", "6", "--processes", "2", "--duration", "6", "--rate", "2", "--json", str(out)),
        *("--deploy-kib", "600"),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    report = json.loads(out.read_text())
    assert report["devices_seen"] == 6
    assert report["written"] >= 6 * 12  # 2 windows a second for 6 s, each device
    assert report["stored"] == report["written"]
    assert report["lost"] == 0
    assert report["gaps"] == 0
    assert report["deploy_chunks"] == 3  # 600 KiB in 256 KiB chunks
    assert report["deploy_committed"] == 6  # every device fetched it over MQTT, checked it and committed
    assert report["deploy_other"] == []
