"""``edgekit inspect``'s summary of a model file."""

from __future__ import annotations

import json

import onnx

from edgekit.inspect_model import inspect_path
from tests.edgekit.graphs import OPSET, cnn_model, matmul_model


def test_summary_of_a_model_file(tmp_path):
    path = tmp_path / "cnn.onnx"
    model = cnn_model()
    model.producer_name, model.producer_version = "tests", "1.0"
    onnx.save(model, str(path))

    summary = inspect_path(path)

    assert summary.file_bytes == path.stat().st_size
    assert summary.producer == "tests 1.0"
    assert summary.opsets == {"ai.onnx": OPSET}
    assert [s.name for s in summary.inputs] == ["x"]
    assert summary.node_count == 4
    assert summary.op_histogram == {"Conv": 1, "Relu": 1, "Flatten": 1, "Gemm": 1}
    assert summary.weights.param_count == sum(int(onnx.numpy_helper.to_array(t).size) for t in model.graph.initializer)
    assert summary.quantized is None
    data = json.loads(json.dumps(summary.to_json()))
    assert data["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 3, 8, 8]}]
    assert data["producer"] == "tests 1.0"


def test_file_size_counts_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(matmul_model(), str(path), save_as_external_data=True, location="m.bin", size_threshold=0)
    summary = inspect_path(path)
    assert summary.file_bytes == path.stat().st_size + (tmp_path / "m.bin").stat().st_size
    assert summary.producer == "unknown"
