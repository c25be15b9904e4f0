"""End-to-end compress runs on the bundled digits models (real ONNX Runtime, real quantization)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgekit.compress import CompressOptions, compress
from edgekit.errors import DataError, PassError
from edgekit.images import parse_preprocess
from edgekit.measure.latency import LatencyBudget

FAST = LatencyBudget(warmup=2, min_runs=5, max_runs=20, seconds=0.1, rounds=2)


def test_digits_cnn_int8_static_meets_the_issue_targets(digits, tmp_path):
    out = tmp_path / "out"
    options = CompressOptions(calib=digits / "cnn_calib.npz", eval=digits / "cnn_test.npz", latency_budget=FAST)
    report = compress(digits / "cnn.onnx", out, options)

    chosen = report.chosen_variant
    assert chosen.name == "int8-static"
    assert chosen.size.raw <= 0.30 * report.original.size.raw
    assert report.original.accuracy is not None
    assert chosen.accuracy is not None
    assert report.original.accuracy - chosen.accuracy <= 0.005
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]
    written = json.loads((out / "report.json").read_text())
    assert written["chosen"] == "int8-static"
    assert written["variants"][0]["size"]["raw_bytes"] == (out / "model.onnx").stat().st_size
    assert {lat["batch"] for lat in written["original"]["latency"]} == {1, 32}
    assert written["data"]["calibration"]["synthetic"] is False


def test_every_mode_is_written_and_measured(digits, tmp_path):
    options = CompressOptions(
        modes=("fp16", "int8-static", "int8-dynamic", "prune"),
        calib=digits / "mlp_calib.npz",
        eval=digits / "mlp_test.npz",
        latency_budget=FAST,
    )
    report = compress(digits / "mlp.onnx", tmp_path, options)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["int8-dynamic.onnx", "int8-static.onnx", "model.onnx", "prune.onnx", "report.json"]
    by_name = {v.name: v for v in report.variants}
    fp16 = by_name["fp16"].passes[0]
    assert fp16.after.weight_bytes < 0.55 * fp16.before.weight_bytes
    assert by_name["fp16"].size.raw < report.original.size.raw
    assert by_name["prune"].size.zipped < report.original.size.zipped
    for variant in report.variants:
        assert variant.fidelity, variant.name
        assert variant.accuracy is not None
        assert variant.accuracy > 0.9


def test_without_calibration_data_static_int8_says_it_guessed(digits, tmp_path):
    report = compress(digits / "cnn.onnx", tmp_path, CompressOptions(latency_budget=FAST))
    assert report.data["calibration"]["synthetic"] is True
    assert any("SYNTHETIC" in w for w in report.warnings)
    assert report.chosen_variant.passes[0].details["calibration_synthetic"] is True


def test_bad_calibration_data_writes_nothing(digits, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((4, 64), np.float32), other=np.zeros((4, 1), np.float32))
    out = tmp_path / "out"
    with pytest.raises(DataError, match="missing \\['input'\\]"):
        compress(digits / "cnn.onnx", out, CompressOptions(calib=bad, latency_budget=FAST))
    assert not out.exists()


def test_an_already_quantized_model_is_refused(digits, tmp_path):
    first = tmp_path / "first"
    compress(digits / "cnn.onnx", first, CompressOptions(calib=digits / "cnn_calib.npz", latency_budget=FAST))
    with pytest.raises(PassError, match="nothing to quantize"):
        compress(first / "model.onnx", tmp_path / "second", CompressOptions(latency_budget=FAST))
    assert not (tmp_path / "second").exists()


def test_calibration_from_an_image_folder(digits, tmp_path):
    with np.load(digits / "cnn_calib.npz") as data:
        images = data["input"][:64, 0]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray((img * 255).round().astype(np.uint8), mode="L").save(folder / f"{i:03}.png")
    options = CompressOptions(
        calib=folder, preprocess=parse_preprocess("scale=1/255"), eval=digits / "cnn_test.npz", latency_budget=FAST
    )
    report = compress(digits / "cnn.onnx", tmp_path / "out", options)
    assert report.data["calibration"]["samples"] == 64
    assert report.original.accuracy is not None
    assert report.chosen_variant.accuracy is not None
    assert report.original.accuracy - report.chosen_variant.accuracy <= 0.01
