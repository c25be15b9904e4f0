"""A real sentence-embedding transformer (all-MiniLM-L6-v2, cached by ``tools/fetch_models.py minilm``) compressed
under a 1% budget with no labels: the result is judged by cosine to the original's embeddings.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from tests.models import cached

runner = CliRunner()
# --prefer size: the smallest within the budget, whatever this CPU times fastest (by default a variant clearly
# slower than FP32 is not taken, and a 0.1 s timing on a busy machine could say so of any of them)
FAST = ["--timing", "0.1", "--max-trials", "2", "--prefer", "size"]


def embed(path, feeds) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["embeddings"], feeds)
    return out


@pytest.mark.slow
def test_minilm_under_a_1_percent_budget_is_under_30_percent_of_the_size_and_keeps_its_embeddings(tmp_path):
    model = cached("minilm")
    calib, evaluation = model.with_name("minilm_calib.npz"), model.with_name("minilm_eval.npz")
    out = tmp_path / "out"

    args = ["compress", str(model), "--calib", str(calib), "--eval", str(evaluation), "--budget", "1%"]
    result = runner.invoke(app, [*args, "-o", str(out), "--no-bundle", *FAST])

    assert result.exit_code == 0, result.output
    written = out / "model.onnx"
    assert written.stat().st_size <= 0.3 * model.stat().st_size, result.output
    with np.load(evaluation) as data:
        feeds = {name: data[name] for name in ("input_ids", "attention_mask")}
    want, got = embed(model, feeds), embed(written, feeds)
    cosine = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= 0.98
    assert "budget 1% met" in result.output
