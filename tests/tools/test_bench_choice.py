"""Smoke test of tools/bench_choice.py: the same compress command run twice, the choice of each run tabled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_choice.py"


def test_two_runs_of_the_digits_mlp_are_tabled_with_their_choice():
    argv = [sys.executable, str(TOOL), "--models", "mlp", "--runs", "2", "--timing", "0.05", "--markdown"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    # exit 0: both runs chose the same; 1: they did not (a 0.05 s timing may well differ): both are answers
    assert done.returncode in {0, 1}, f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    assert "one core kept busy" in done.stdout
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| digits mlp |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 5  # model, run 1, run 2, same in all, detail
    assert cells[3] == ("yes" if done.returncode == 0 else "**no**")
    assert cells[4].startswith(("1", "2", "3", "4", "5", "6", "7", "8", "9"))  # the size in % of the original
    assert "acc " in cells[4]


def test_unknown_model_is_refused_in_one_line():
    done = subprocess.run(
        [sys.executable, str(TOOL), "--models", "resnet"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 2
    assert "--models: unknown resnet; choose from det,rec,cls,cnn,mlp,minilm,lstm" in done.stderr
