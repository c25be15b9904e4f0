"""Smoke test of tools/bench_compress.py: a plain model and the stateful LSTM each get a full row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_compress.py"


def _row(stdout: str, title: str) -> list[str]:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith(f"| {title} |")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_the_mlp_and_the_stateful_lstm_get_their_rows():
    argv = [sys.executable, str(TOOL), "--models", "mlp,lstm", "--timing", "0.05", "--markdown"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    mlp = _row(done.stdout, "digits mlp")
    assert len(mlp) == 11
    assert mlp[3].startswith("9.9 KiB")  # the static INT8 file, as report.json gives it
    assert "error" not in " ".join(mlp)
    lstm = _row(done.stdout, "Conv1d+LSTM (stateful)")
    assert "error" not in " ".join(lstm)
    # judged along its sequences, each model feeding back its own state: the bench agrees with edgekit
    assert lstm[7].startswith("top-1 ")
    assert lstm[10] == "1% met"
    assert "CHECK:" not in done.stdout  # the bench's own measurement matched report.json's
    assert "state fed back hn → h, cn → c" in done.stdout


def test_unknown_model_is_refused_in_one_line():
    done = subprocess.run(
        [sys.executable, str(TOOL), "--models", "resnet"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 2
    assert "--models: unknown resnet; choose from det,rec,cls,cnn,mlp,minilm,lstm" in done.stderr
