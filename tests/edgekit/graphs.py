"""Tiny ONNX graphs for unit tests, built with ``onnx.helper``, and a way to run them in ONNX Runtime.

Every builder takes a seed so a test's weights are random but reproducible; every graph has a
free batch axis named ``N`` unless it says otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from collections.abc import Sequence

OPSET = 17
IR_VERSION = 8  # what onnxruntime of any supported version reads
FLOAT = TensorProto.FLOAT


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
    *,
    opset: int = OPSET,
    check: bool = True,
) -> onnx.ModelProto:
    """A model with the given graph, checked by ``onnx.checker`` unless ``check`` is false."""
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    if check:
        onnx.checker.check_model(model)
    return model


def weight(rng: np.random.Generator, name: str, *shape: int, scale: float = 0.5) -> onnx.TensorProto:
    """A float32 initializer of normal random values."""
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def matmul_model(seed: int = 0, *, features: int = 16, classes: int = 8) -> onnx.ModelProto:
    """``x[N, features] @ W + b`` → ``y[N, classes]``."""
    rng = np.random.default_rng(seed)
    return make_model(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
            helper.make_node("Add", ["h", "b"], ["y"], name="add"),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", features])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", classes])],
        [weight(rng, "W", features, classes), weight(rng, "b", classes)],
    )


def gemm_model(
    seed: int = 0, *, trans_b: int = 1, bias: bool = True, features: int = 16, classes: int = 8
) -> onnx.ModelProto:
    """One ``Gemm`` (PyTorch's ``nn.Linear`` is ``transB=1`` with a bias)."""
    rng = np.random.default_rng(seed)
    w_shape = (classes, features) if trans_b else (features, classes)
    inits = [weight(rng, "W", *w_shape)]
    inputs = ["x", "W"]
    if bias:
        inits.append(weight(rng, "b", classes))
        inputs.append("b")
    return make_model(
        [helper.make_node("Gemm", inputs, ["y"], name="fc", transB=trans_b)],
        [helper.make_tensor_value_info("x", FLOAT, ["N", features])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", classes])],
        inits,
    )


def conv_model(seed: int = 0) -> onnx.ModelProto:
    """A single ``Conv`` over ``x[N, 3, 8, 8]`` (nothing dynamic quantization takes by default)."""
    rng = np.random.default_rng(seed)
    return make_model(
        [helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4, 8, 8])],
        [weight(rng, "W", 4, 3, 3, 3), weight(rng, "B", 4)],
    )


CNN_INPUT = (3, 8, 8)
CNN_CLASSES = 10


def cnn_model(seed: int = 0, *, channels: int = 8) -> onnx.ModelProto:
    """``Conv → Relu → Flatten → Gemm``: a miniature image classifier, ``x[N, 3, 8, 8]`` → ``logits[N, 10]``."""
    rng = np.random.default_rng(seed)
    c, h, w = CNN_INPUT
    flat = channels * h * w
    return make_model(
        [
            helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("logits", FLOAT, ["N", CNN_CLASSES])],
        [
            weight(rng, "conv_w", channels, c, 3, 3),
            weight(rng, "conv_b", channels, scale=0.1),
            weight(rng, "fc_w", CNN_CLASSES, flat, scale=0.05),
            weight(rng, "fc_b", CNN_CLASSES, scale=0.1),
        ],
    )


def foldable_model(seed: int = 0) -> onnx.ModelProto:
    """``Identity(x * (A + B))``: a constant subexpression and an Identity for clean-up to remove."""
    rng = np.random.default_rng(seed)
    return make_model(
        [
            helper.make_node("Add", ["A", "B"], ["s"], name="fold_me"),
            helper.make_node("Mul", ["x", "s"], ["m"], name="mul"),
            helper.make_node("Identity", ["m"], ["y"], name="ident"),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 6])],
        [weight(rng, "A", 6), weight(rng, "B", 6)],
    )


def constant_weight_model(seed: int = 0) -> onnx.ModelProto:
    """A MatMul whose weight is a ``Constant`` node, not an initializer (as some exporters write)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((5, 3))).astype(np.float32)
    return make_model(
        [
            helper.make_node("Constant", [], ["W"], name="const_w", value=numpy_helper.from_array(w, "W")),
            helper.make_node("Constant", [], ["bias"], name="const_b", value_floats=[0.5, -1.0, 2.0]),
            helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
            helper.make_node("Add", ["h", "bias"], ["y"], name="add"),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 3])],
    )


def random_input(shape: Sequence[int], seed: int = 1) -> np.ndarray:
    """Standard-normal float32 data."""
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of ``model`` on ``feeds``, computed by ONNX Runtime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def op_types(model: onnx.ModelProto) -> set[str]:
    """The op types a graph uses."""
    return {n.op_type for n in model.graph.node}


def sensitive_model(seed: int = 0, *, features: int = 64, classes: int = 8) -> onnx.ModelProto:
    """``x @ W1 → h @ W2 → y``, made to be fed :func:`sensitive_input` (feature 0 huge, carrying nothing).

    Row 0 of ``W1`` is near zero, so feature 0 barely reaches ``h``; but one 8-bit scale for ``x``
    must span it, and the small features that decide ``y`` round to nothing. Quantizing the node
    ``sensitive`` (which reads ``x``) wrecks the output; quantizing ``harmless`` (which reads ``h``) does not.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 0.5, (features, features)).astype(np.float32)
    w1[0, :] = 1e-5
    return make_model(
        [
            helper.make_node("MatMul", ["x", "W1"], ["h"], name="sensitive"),
            helper.make_node("MatMul", ["h", "W2"], ["y"], name="harmless"),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", features])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", classes])],
        [numpy_helper.from_array(w1, "W1"), weight(rng, "W2", features, classes)],
    )


def sensitive_input(samples: int, *, features: int = 64, seed: int = 1) -> np.ndarray:
    """Inputs for :func:`sensitive_model`: normal features, feature 0 around 1000."""
    x = np.random.default_rng(seed).normal(0.0, 1.0, (samples, features)).astype(np.float32)
    x[:, 0] = 1000.0 + x[:, 0]
    return x


def sensor_model(seed: int = 0, *, features: int = 16, classes: int = 6) -> onnx.ModelProto:
    """``(x - mean) / std`` baked into the graph, then ``fc1 → relu → fc2``: for :func:`sensor_input`'s raw readings.

    The readings sit near 1000 with a spread of 0.1: float16 holds them in steps of 0.5, so converting the
    node ``center`` (which reads ``x``) to float16 erases what decides the class; every other node converts
    harmlessly, since after ``center`` the values are small.
    """
    rng = np.random.default_rng(seed)
    mean = (1000.0 + rng.uniform(-5.0, 5.0, features)).astype(np.float32)
    return make_model(
        [
            helper.make_node("Sub", ["x", "mean"], ["c"], name="center"),
            helper.make_node("Div", ["c", "std"], ["z"], name="scale"),
            helper.make_node("MatMul", ["z", "W1"], ["a"], name="fc1"),
            helper.make_node("Relu", ["a"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "W2"], ["logits"], name="fc2"),
        ],
        [helper.make_tensor_value_info("x", FLOAT, ["N", features])],
        [helper.make_tensor_value_info("logits", FLOAT, ["N", classes])],
        [
            numpy_helper.from_array(mean, "mean"),
            numpy_helper.from_array(np.full(features, 0.1, np.float32), "std"),
            weight(rng, "W1", features, 32, scale=0.25),
            weight(rng, "W2", 32, classes, scale=0.25),
        ],
    )


def sensor_input(samples: int, *, features: int = 16, seed: int = 1) -> np.ndarray:
    """Raw readings for :func:`sensor_model` (same ``features``): its means plus noise of spread 0.1."""
    mean = 1000.0 + np.random.default_rng(0).uniform(-5.0, 5.0, features)
    noise = np.random.default_rng(seed).normal(0.0, 0.1, (samples, features))
    return (mean + noise).astype(np.float32)
