"""Run a converted model in LiteRT and its ONNX original in onnxruntime, on the same inputs, and compare."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from onnx import TensorProto, helper, numpy_helper

from tests.edgekit.graphs import make_model

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit.tflite import TFLiteModel

#: FP32 max abs error allowed, relative to the range of the ONNX output (issue 8)
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2  # float16 weights: the PP-OCR classifier measures 0.0099 on its 200 lines
FLOAT = TensorProto.FLOAT


def run_litert(model: TFLiteModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feed ONNX-layout arrays, get ONNX-layout outputs back (the model's layouts applied both ways)."""
    interpreter = Interpreter(model_content=model.data, num_threads=1)
    runner = interpreter.get_signature_runner()
    out = runner(**{t.name: np.ascontiguousarray(feeds[t.name].transpose(t.perm)) for t in model.inputs})
    return {t.name: out[t.name].transpose(np.argsort(t.perm)) for t in model.outputs}


def run_litert_batches(model: TFLiteModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a batch-1 model on each row of ``feeds`` in turn and stack the outputs."""
    interpreter = Interpreter(model_content=model.data, num_threads=1)
    runner = interpreter.get_signature_runner()
    rows = len(next(iter(feeds.values())))
    outs: dict[str, list[np.ndarray]] = {t.name: [] for t in model.outputs}
    for i in range(rows):
        out = runner(**{t.name: np.ascontiguousarray(feeds[t.name][i : i + 1].transpose(t.perm)) for t in model.inputs})
        for t in model.outputs:
            outs[t.name].append(out[t.name].transpose(np.argsort(t.perm)))
    return {name: np.concatenate(values) for name, values in outs.items()}


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Max abs error over the range of the reference output (over its magnitude when it is one value)."""
    assert got.shape == want.shape, (got.shape, want.shape)
    spread = float(want.max() - want.min()) if want.size else 0.0
    if spread == 0.0:
        spread = float(np.abs(want).max()) if want.size else 0.0
    return float(np.abs(got.astype(np.float64) - want).max()) / max(spread, 1e-6)


def graph(
    nodes: Sequence[onnx.NodeProto],
    inputs: dict[str, Sequence[int]],
    inits: Sequence[onnx.TensorProto] = (),
    *,
    outputs: Sequence[str] = ("y",),
    opset: int = 17,
) -> onnx.ModelProto:
    """A checked model with float inputs of the given shapes and outputs of inferred shape."""
    model = make_model(
        nodes,
        [helper.make_tensor_value_info(name, FLOAT, list(shape)) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(name, FLOAT, None) for name in outputs],
        inits,
        opset=opset,
        check=False,
    )
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def const(name: str, array: np.ndarray | Sequence[float] | Sequence[int], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Normal random values for every input (static shapes, batch 1 for a free first axis)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim
        ]
        feeds[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds
