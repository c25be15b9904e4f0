"""The ONNX Runtime runner every measurement goes through, and the size measure."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgekit.errors import EngineError, ModelError
from edgekit.measure.session import OrtRunner
from edgekit.measure.size import Size
from tests.edgekit.graphs import matmul_model, random_input, run


def test_run_batches_joins_outputs_along_the_sample_axis():
    model = matmul_model()
    x = random_input((7, 16))
    runner = OrtRunner(model.SerializeToString(), threads=1)

    (joined,) = runner.run_batches([{"x": x[:3]}, {"x": x[3:6]}, {"x": x[6:]}])

    assert runner.output_names == ["y"]
    np.testing.assert_allclose(joined, run(model, {"x": x})[0], rtol=1e-6)


def test_bytes_that_are_no_model_are_a_model_error():
    with pytest.raises(ModelError, match=r"cannot load the fp16 model .*check the model's ops and opset"):
        OrtRunner(b"not a model", threads=1, label="fp16 model")


def test_size_counts_raw_and_deflated_bytes():
    data = matmul_model().SerializeToString()
    size = Size.of(data)
    assert size.raw == len(data)
    assert size.zipped == len(zlib.compress(data, 9))
    assert Size.of(bytes(10_000)).zipped < 100
    assert size.to_json() == {"raw_bytes": size.raw, "zipped_bytes": size.zipped}


def test_an_engine_failure_keeps_the_engines_reason():
    with pytest.raises(EngineError) as info:
        OrtRunner(b"not a model", threads=1, label="fp16 model")
    assert info.value.stage == "load"
    assert info.value.reason
    assert "\n" not in info.value.reason


def test_a_run_that_fails_is_an_engine_error_naming_the_model():
    runner = OrtRunner(matmul_model().SerializeToString(), threads=1, label="int8 model")
    with pytest.raises(EngineError, match=r"^ONNX Runtime cannot run the int8 model \(") as info:
        runner.run_batches([{"x": random_input((2, 5))}])  # 5 features where the model takes 16
    assert info.value.stage == "run"
