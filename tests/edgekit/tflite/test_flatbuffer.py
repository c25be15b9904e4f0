"""The written FlatBuffer, read back with the schema's own reader."""

from __future__ import annotations

import numpy as np
import onnx
import tflite

from edgekit.tflite import TFLiteConfig, convert
from edgekit.tflite.flatbuffer import serialize
from edgekit.tflite.graph import Graph

NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _model(data: bytes):
    return tflite.Model.GetRootAsModel(data, 0)


def test_file_identifier_version_and_signature(digits):
    converted = convert(onnx.load(str(digits / "cnn.onnx")))
    data = converted.data
    assert data[4:8] == b"TFL3"
    model = _model(data)
    assert model.Version() == 3
    assert model.SubgraphsLength() == 1
    assert model.Buffers(0).DataLength() == 0  # the empty sentinel buffer
    signature = model.SignatureDefs(0)
    assert signature.SignatureKey() == b"serving_default"
    assert signature.Inputs(0).Name() == b"input"
    assert signature.Outputs(0).Name() == b"logits"
    subgraph = model.Subgraphs(0)
    assert subgraph.Tensors(subgraph.Inputs(0)).Name() == b"input"
    assert subgraph.Tensors(subgraph.Outputs(0)).Name() == b"logits"


def test_constant_data_is_16_byte_aligned_and_round_trips(digits):
    source = onnx.load(str(digits / "cnn.onnx"))
    data = convert(source).data
    start = np.frombuffer(data, np.uint8).ctypes.data
    model = _model(data)
    for i in range(1, model.BuffersLength()):
        assert (model.Buffers(i).DataAsNumpy().ctypes.data - start) % 16 == 0
    subgraph = model.Subgraphs(0)
    tensors = [subgraph.Tensors(i) for i in range(subgraph.TensorsLength())]
    conv = next(n for n in source.graph.node if n.op_type == "Conv")
    bias = next(t for t in tensors if t.Name() == f"{conv.name}_bias".encode())
    want = onnx.numpy_helper.to_array(next(t for t in source.graph.initializer if t.name == conv.input[2]))
    np.testing.assert_array_equal(model.Buffers(bias.Buffer()).DataAsNumpy().view(np.float32), want)


def test_op_codes_above_127_use_the_placeholder_in_the_deprecated_field():
    graph = Graph()
    x = graph.add_tensor("x", (1, 4), np.float32)
    y = graph.add_tensor("y", (1, 4), np.float32)
    graph.add_operator("RELU_0_TO_1", [x], [y])
    graph.inputs, graph.outputs = [x], [y]
    graph.signature_inputs, graph.signature_outputs = {"x": x}, {"y": y}
    code = _model(serialize(graph)).OperatorCodes(0)
    assert code.BuiltinCode() == tflite.BuiltinOperator.RELU_0_TO_1 == 152
    assert code.DeprecatedBuiltinCode() == 127


def test_fp16_weights_are_float16_buffers_behind_dequantize(digits):
    data = convert(onnx.load(str(digits / "cnn.onnx")), TFLiteConfig(variant="fp16")).data
    model = _model(data)
    subgraph = model.Subgraphs(0)
    ops = [subgraph.Operators(i) for i in range(subgraph.OperatorsLength())]
    dequantize = [op for op in ops if NAMES[model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()] == "DEQUANTIZE"]
    assert len(dequantize) == 10  # 5 weights and 5 biases
    for op in dequantize:
        source = subgraph.Tensors(op.Inputs(0))
        assert source.Type() == tflite.TensorType.FLOAT16
        assert model.Buffers(source.Buffer()).DataLength() > 0
        assert subgraph.Tensors(op.Outputs(0)).Type() == tflite.TensorType.FLOAT32
