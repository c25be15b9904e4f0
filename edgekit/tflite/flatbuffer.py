"""Serialize a :class:`~edgekit.tflite.graph.Graph` into a ``.tflite`` FlatBuffer.

The only module that touches the ``tflite`` package (the schema's generated Python builders) and
``flatbuffers``. A FlatBuffer is built back to front: every child (string, vector, table) must be
finished before the table that points to it starts, so each section below creates its children
first. Constant data goes into 16-byte aligned buffers, as TensorFlow's converter writes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edgekit.tflite.graph import Graph, Operator, Options, Quantization, Tensor

#: the schema version LiteRT reads
SCHEMA_VERSION = 3
#: op codes above this live in ``builtin_code`` only; ``deprecated_builtin_code`` holds this placeholder
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
#: the signature LiteRT's ``get_signature_runner()`` picks by default
SIGNATURE_KEY = "serving_default"
_DATA_ALIGNMENT = 16

_TENSOR_TYPES = {
    "float32": "FLOAT32",
    "float16": "FLOAT16",
    "int32": "INT32",
    "uint8": "UINT8",
    "int64": "INT64",
    "bool": "BOOL",
    "int16": "INT16",
    "int8": "INT8",
    "float64": "FLOAT64",
}
#: option fields whose values are enum member names, and the enum each one takes
_ENUM_FIELDS = {
    "FusedActivationFunction": "ActivationFunctionType",
    "Padding": "Padding",
    "OutputType": "TensorType",
    "InDataType": "TensorType",
    "OutDataType": "TensorType",
    "Mode": "MirrorPadMode",
    "WeightsFormat": "FullyConnectedOptionsWeightsFormat",
}


def tensor_type_name(dtype: np.dtype[np.generic]) -> str:
    """The schema's ``TensorType`` member for a numpy dtype."""
    return _TENSOR_TYPES[dtype.name]


def serialize(graph: Graph, *, description: str = "edgekit") -> bytes:
    """The FlatBuffer bytes of a one-subgraph model with a ``serving_default`` signature."""
    import flatbuffers  # type: ignore[import-untyped]

    size = sum(t.data.nbytes for t in graph.tensors if t.data is not None)
    builder = flatbuffers.Builder(size + 4096 + 256 * len(graph.tensors))
    return _Writer(builder, _schema()).write(graph, description)


def _schema() -> Any:  # noqa: ANN401  (the generated package has no types)
    import tflite  # type: ignore[import-untyped]

    return tflite


class _Writer:
    """One serialization: the builder, and the op codes seen so far."""

    def __init__(self, builder: Any, schema: Any) -> None:  # noqa: ANN401
        self.b = builder
        self.s = schema
        self.opcodes: dict[str, int] = {}

    def write(self, graph: Graph, description: str) -> bytes:
        s, b = self.s, self.b
        buffers, buffer_of = self._buffers(graph.tensors)
        tensors = [self._tensor(t, buffer_of.get(i, 0)) for i, t in enumerate(graph.tensors)]
        operators = [self._operator(op) for op in graph.operators]
        subgraph = self._subgraph(graph, tensors, operators)
        opcodes = [self._opcode(name) for name in self.opcodes]
        signature = self._signature(graph)
        desc = b.CreateString(description)
        subgraphs = self._tables(s.ModelStartSubgraphsVector, [subgraph])
        opcode_vec = self._tables(s.ModelStartOperatorCodesVector, opcodes)
        buffer_vec = self._tables(s.ModelStartBuffersVector, buffers)
        signature_vec = self._tables(s.ModelStartSignatureDefsVector, [signature])
        s.ModelStart(b)
        s.ModelAddVersion(b, SCHEMA_VERSION)
        s.ModelAddOperatorCodes(b, opcode_vec)
        s.ModelAddSubgraphs(b, subgraphs)
        s.ModelAddDescription(b, desc)
        s.ModelAddBuffers(b, buffer_vec)
        s.ModelAddSignatureDefs(b, signature_vec)
        b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    # -- children -------------------------------------------------------------------------------

    def _tables(self, start: Callable[[Any, int], None], offsets: Sequence[int]) -> int:
        start(self.b, len(offsets))
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        return int(self.b.EndVector())

    def _ints(self, values: Sequence[int], dtype: type[np.generic] = np.int32) -> int:
        return int(self.b.CreateNumpyVector(np.asarray(values, dtype=dtype)))

    def _buffers(self, tensors: Sequence[Tensor]) -> tuple[list[int], dict[int, int]]:
        """Buffer 0 is the empty sentinel the schema requires; every constant tensor gets its own."""
        s, b = self.s, self.b
        s.BufferStart(b)
        offsets = [s.BufferEnd(b)]
        buffer_of: dict[int, int] = {}
        for i, t in enumerate(tensors):
            if t.data is None:
                continue
            raw = np.ascontiguousarray(t.data, dtype=t.dtype.newbyteorder("<")).tobytes()
            b.StartVector(1, len(raw), _DATA_ALIGNMENT)
            b.head -= len(raw)
            b.Bytes[b.head : b.head + len(raw)] = raw
            data = b.EndVector()
            s.BufferStart(b)
            s.BufferAddData(b, data)
            buffer_of[i] = len(offsets)
            offsets.append(s.BufferEnd(b))
        return offsets, buffer_of

    def _quantization(self, q: Quantization) -> int:
        s, b = self.s, self.b
        scale = int(b.CreateNumpyVector(np.asarray(q.scale, dtype=np.float32)))
        zero_point = self._ints(q.zero_point, np.int64)
        s.QuantizationParametersStart(b)
        s.QuantizationParametersAddScale(b, scale)
        s.QuantizationParametersAddZeroPoint(b, zero_point)
        s.QuantizationParametersAddQuantizedDimension(b, q.axis)
        return int(s.QuantizationParametersEnd(b))

    def _tensor(self, t: Tensor, buffer: int) -> int:
        s, b = self.s, self.b
        name = b.CreateString(t.name)
        shape = self._ints(t.shape)
        quant = self._quantization(t.quantization) if t.quantization is not None else None
        s.TensorStart(b)
        s.TensorAddShape(b, shape)
        s.TensorAddType(b, getattr(s.TensorType, tensor_type_name(t.dtype)))
        s.TensorAddBuffer(b, buffer)
        s.TensorAddName(b, name)
        if quant is not None:
            s.TensorAddQuantization(b, quant)
        return int(s.TensorEnd(b))

    def _options(self, options: Options) -> int:
        s, b = self.s, self.b
        # the package re-exports every module's functions under the table's name: Conv2DOptionsAddStrideW
        getattr(s, f"{options.table}Start")(b)
        for name, value in options.fields.items():
            add = getattr(s, f"{options.table}Add{name}")
            enum = _ENUM_FIELDS.get(name)
            add(b, getattr(getattr(s, enum), str(value)) if enum else value)
        return int(getattr(s, f"{options.table}End")(b))

    def _operator(self, op: Operator) -> int:
        s, b = self.s, self.b
        index = self.opcodes.setdefault(op.opcode, len(self.opcodes))
        inputs = self._ints(op.inputs)
        outputs = self._ints(op.outputs)
        options = self._options(op.options) if op.options is not None else None
        s.OperatorStart(b)
        s.OperatorAddOpcodeIndex(b, index)
        s.OperatorAddInputs(b, inputs)
        s.OperatorAddOutputs(b, outputs)
        if op.options is not None:
            s.OperatorAddBuiltinOptionsType(b, getattr(s.BuiltinOptions, op.options.table))
            s.OperatorAddBuiltinOptions(b, options)
        return int(s.OperatorEnd(b))

    def _opcode(self, name: str) -> int:
        s, b = self.s, self.b
        code = getattr(s.BuiltinOperator, name)
        s.OperatorCodeStart(b)
        s.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES))
        s.OperatorCodeAddBuiltinCode(b, code)
        s.OperatorCodeAddVersion(b, 1)
        return int(s.OperatorCodeEnd(b))

    def _subgraph(self, graph: Graph, tensors: list[int], operators: list[int]) -> int:
        s, b = self.s, self.b
        tensor_vec = self._tables(s.SubGraphStartTensorsVector, tensors)
        operator_vec = self._tables(s.SubGraphStartOperatorsVector, operators)
        inputs = self._ints(graph.inputs)
        outputs = self._ints(graph.outputs)
        name = b.CreateString("main")
        s.SubGraphStart(b)
        s.SubGraphAddTensors(b, tensor_vec)
        s.SubGraphAddInputs(b, inputs)
        s.SubGraphAddOutputs(b, outputs)
        s.SubGraphAddOperators(b, operator_vec)
        s.SubGraphAddName(b, name)
        return int(s.SubGraphEnd(b))

    def _tensor_maps(self, names: dict[str, int]) -> list[int]:
        s, b = self.s, self.b
        maps = []
        for name, index in names.items():
            text = b.CreateString(name)
            s.TensorMapStart(b)
            s.TensorMapAddName(b, text)
            s.TensorMapAddTensorIndex(b, index)
            maps.append(s.TensorMapEnd(b))
        return maps

    def _signature(self, graph: Graph) -> int:
        s, b = self.s, self.b
        inputs = self._tables(s.SignatureDefStartInputsVector, self._tensor_maps(graph.signature_inputs))
        outputs = self._tables(s.SignatureDefStartOutputsVector, self._tensor_maps(graph.signature_outputs))
        key = b.CreateString(SIGNATURE_KEY)
        s.SignatureDefStart(b)
        s.SignatureDefAddInputs(b, inputs)
        s.SignatureDefAddOutputs(b, outputs)
        s.SignatureDefAddSignatureKey(b, key)
        s.SignatureDefAddSubgraphIndex(b, 0)
        return int(s.SignatureDefEnd(b))


def constant_stats(data: bytes) -> tuple[int, int]:
    """Elements and bytes of the constant tensors of a ``.tflite`` model: its parameters and weight bytes."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(data, 0)
    sizes = [model.Buffers(i).DataLength() for i in range(model.BuffersLength())]
    params = 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if sizes[tensor.Buffer()]:
                params += int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
    return params, sum(sizes)
