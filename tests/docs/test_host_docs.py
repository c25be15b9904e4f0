"""docs/bundle.md and docs/compress.md: their shell blocks, run as written in a scratch folder.

``model.pkl`` and ``test.npz`` are a real pickled classifier and its data; ``model.tflite`` is the BlazeFace
model in examples/blazeface; the ONNX placeholders are the digits models (``rec.onnx``, an OCR recogniser
in docs/compress.md, is the digits MLP there: any model without labels shows the same thing).
"""

from __future__ import annotations

from tests.docs.blocks import find
from tests.docs.conftest import scratch
from tests.docs.models import classifier
from tests.docs.shell import QUICK_COMPRESS, DocShell


def test_bundle_md_keygen_compress_pack_sign_verify_inspect_convert(tmp_path):
    work = scratch(tmp_path / "repo", "examples/blazeface")
    classifier(work / "model.pkl", work / "test.npz")
    swaps = {"model.tflite": "examples/blazeface/face_detection_short_range.tflite"}
    with DocShell(work, swaps=swaps) as shell:
        results = shell.play(find("docs/bundle.md", "Importers and the signed edge bundle"), QUICK_COMPRESS)
    assert sorted(path.name for path in (work / "out").glob("*.edgebundle")) == [
        "detector-2.0.0.edgebundle",
        "model-1.0.0.edgebundle",  # the comment's name for it
    ]
    (verified,) = [result for result in results if result.command.startswith("edgekit verify")]
    assert "signed by key" in verified.out
    assert "self-test passed" in verified.out
    assert (work / "model.onnx").is_file()


def test_compress_md_auto_mode_with_and_without_labels(tmp_path):
    work = scratch(tmp_path / "repo", "examples/digits")
    swaps = {
        "model.onnx": "examples/digits/cnn.onnx",
        "calib.npz": "examples/digits/cnn_calib.npz",
        "test.npz": "examples/digits/cnn_test.npz",
        "rec.onnx": "examples/digits/mlp.onnx",
        "lines.npz": "examples/digits/mlp_calib.npz",
    }
    with DocShell(work, swaps=swaps) as shell:
        labelled, unlabelled = shell.play(
            find("docs/compress.md", "Auto mode: compress under an accuracy budget"), QUICK_COMPRESS
        )
    assert "budget 0.005 met (accuracy" in labelled.out  # 0.5pt: half a point of accuracy
    assert "budget 1% met (agreement" in unlabelled.out  # no labels: agreement with FP32
