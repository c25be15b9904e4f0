"""Models that reach outside their bundle, built with the real ``onnx`` package and LiteRT's own schema, and the
signed bundles that carry them; shared by the confinement, loader, verify and serve tests."""

from __future__ import annotations

import hashlib
import json

import flatbuffers
import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as tfl
from onnx import TensorProto
from onnx import helper as oh

from edgekit.bundle.archive import archive_bytes
from edgekit.bundle.signing import load_private_key, sign_manifest
from edgekit_runtime.bundle_format import FORMAT, FORMAT_VERSION, GOLDEN, MANIFEST, MODEL_FILES, SIGNATURE
from edgekit_runtime.golden import Golden

#: what the attacker wants: the bytes of a file beside the device's working directory
SECRET = b"db-password=hunter2!"
STOLEN_FILE = "secret.txt"
#: the input value that makes the model hand the secret back
TRIGGER = 1337.0
OPSET = [oh.make_opsetid("", 17)]


def external(name: str, location: str = STOLEN_FILE, size: int = len(SECRET)) -> TensorProto:
    """A UINT8 tensor whose bytes ONNX Runtime reads from ``location`` (relative: the working directory)."""
    tensor = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[size])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": str(size)}.items():
        tensor.external_data.add(key=key, value=value)
    return tensor


def _leak_nodes(source: str) -> list[onnx.NodeProto]:
    """``leak = float(source) * (x == TRIGGER)``: zeros for every input but the trigger."""
    return [
        oh.make_node("Cast", [source], ["secret_f"], to=TensorProto.FLOAT),
        oh.make_node("Constant", [], ["magic"], value=oh.make_tensor("magic", TensorProto.FLOAT, [], [TRIGGER])),
        oh.make_node("Equal", ["x", "magic"], ["hit"]),
        oh.make_node("Cast", ["hit"], ["hit_f"], to=TensorProto.FLOAT),
        oh.make_node("Mul", ["secret_f", "hit_f"], ["leak"]),
    ]


def _model(nodes, initializers=(), **kwargs) -> onnx.ModelProto:
    graph = oh.make_graph(
        nodes,
        "leaky",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [oh.make_tensor_value_info("leak", TensorProto.FLOAT, ["batch", len(SECRET)])],
        list(initializers),
    )
    model = oh.make_model(graph, opset_imports=kwargs.pop("opset_imports", OPSET), **kwargs)
    model.ir_version = 9
    return model


def leaking_model(location: str = STOLEN_FILE) -> onnx.ModelProto:
    """The attack: an initializer kept as external data, handed back when ``x == TRIGGER``."""
    return _model(_leak_nodes("secret"), [external("secret", location)])


def _const(output: str, location: str = STOLEN_FILE) -> onnx.NodeProto:
    return oh.make_node("Constant", [], [output], name=f"const_{output}", value=external(f"{output}_t", location))


def _branch(name: str, nodes: list[onnx.NodeProto], output: str) -> onnx.GraphProto:
    return oh.make_graph(nodes, name, [], [oh.make_tensor_value_info(output, TensorProto.UINT8, [len(SECRET)])])


def _constant_node() -> onnx.ModelProto:
    return _model([_const("secret"), *_leak_nodes("secret")])


def _cond() -> onnx.NodeProto:
    return oh.make_node("Constant", [], ["cond"], value=oh.make_tensor("c", TensorProto.BOOL, [], [True]))


def _if_subgraph() -> onnx.ModelProto:
    zeros = oh.make_tensor("z", TensorProto.UINT8, [len(SECRET)], bytes(len(SECRET)), raw=True)
    branches = {
        "then_branch": _branch("then", [_const("inner")], "inner"),
        "else_branch": _branch("else", [oh.make_node("Constant", [], ["inner"], value=zeros)], "inner"),
    }
    return _model([_cond(), oh.make_node("If", ["cond"], ["secret"], name="pick", **branches), *_leak_nodes("secret")])


def _loop_in_if() -> onnx.ModelProto:
    body = oh.make_graph(
        [_const("deep"), oh.make_node("Identity", ["c_in"], ["c_out"])],
        "body",
        [
            oh.make_tensor_value_info("i", TensorProto.INT64, []),
            oh.make_tensor_value_info("c_in", TensorProto.BOOL, []),
        ],
        [
            oh.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            oh.make_tensor_value_info("deep", TensorProto.UINT8, None),
        ],
    )
    then = _branch("then", [oh.make_node("Loop", ["", ""], ["scan"], name="loop", body=body)], "scan")
    pick = oh.make_node("If", ["cond"], ["secret"], then_branch=then, else_branch=then)
    return _model([_cond(), pick, *_leak_nodes("secret")])


def _indices() -> TensorProto:
    return oh.make_tensor("secret_indices", TensorProto.INT64, [len(SECRET)], list(range(len(SECRET))))


def _sparse_initializer() -> onnx.ModelProto:
    model = _model(_leak_nodes("secret_values"))
    model.graph.sparse_initializer.append(oh.make_sparse_tensor(external("secret_values"), _indices(), [len(SECRET)]))
    return model


def _sparse_constant() -> onnx.ModelProto:
    sparse = oh.make_sparse_tensor(external("secret_values"), _indices(), [len(SECRET)])
    return _model([oh.make_node("Constant", [], ["secret"], sparse_value=sparse), *_leak_nodes("secret")])


def _local_function() -> onnx.ModelProto:
    function = oh.make_function("local.fns", "Secret", [], ["out"], [_const("out")], OPSET)
    call = oh.make_node("Secret", [], ["secret"], domain="local.fns")
    opsets = [*OPSET, oh.make_opsetid("local.fns", 1)]
    return _model([call, *_leak_nodes("secret")], opset_imports=opsets, functions=[function])


def _training_graph() -> onnx.ModelProto:
    zeros = oh.make_tensor("secret", TensorProto.UINT8, [len(SECRET)], bytes(len(SECRET)), raw=True)
    model = _model(_leak_nodes("secret"), [zeros])
    model.training_info.add().initialization.CopyFrom(oh.make_graph([], "init", [], [], [external("secret")]))
    return model


#: the same leak with the external tensor somewhere else in the model
PLACES = {
    "initializer, absolute path": lambda: leaking_model("/etc/hostname"),
    "Constant node": _constant_node,
    "If subgraph": _if_subgraph,
    "Loop inside an If subgraph": _loop_in_if,
    "sparse initializer": _sparse_initializer,
    "Constant node's sparse value": _sparse_constant,
    "model-local function": _local_function,
    "training graph": _training_graph,
}


def external_data_in(place: str) -> onnx.ModelProto:
    """The leak, with its external tensor at ``place`` (a key of ``PLACES``)."""
    return PLACES[place]()


def custom_domain_model(*, as_function: bool = False) -> onnx.ModelProto:
    """``y = Double(x)`` from domain ``my.ops``: a custom-op library's, or a model-local function's."""
    node = oh.make_node("Double", ["x"], ["leak"], name="double", domain="my.ops")
    functions = []
    if as_function:
        body = [oh.make_node("Add", ["a", "a"], ["b"])]
        functions = [oh.make_function("my.ops", "Double", ["a"], ["b"], body, OPSET)]
    graph = oh.make_graph(
        [node],
        "custom",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [oh.make_tensor_value_info("leak", TensorProto.FLOAT, ["batch", 1])],
    )
    model = oh.make_model(graph, opset_imports=[*OPSET, oh.make_opsetid("my.ops", 1)], functions=functions)
    model.ir_version = 9
    return model


def plain_model() -> onnx.ModelProto:
    """A model that reaches nothing: ``leak = x + x``."""
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "x"], ["leak"])],
        "plain",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [oh.make_tensor_value_info("leak", TensorProto.FLOAT, ["batch", 1])],
    )
    model = oh.make_model(graph, opset_imports=OPSET)
    model.ir_version = 9
    return model


# -- TFLite ----------------------------------------------------------------------------------------------------------


class _Tflite:
    """A FlatBuffer builder with the schema's helpers, for one small model."""

    def __init__(self) -> None:
        self.b = flatbuffers.Builder(1024)

    def tables(self, start, offsets):
        start(self.b, len(offsets))
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def ints(self, values):
        return self.b.CreateNumpyVector(np.asarray(values, np.int32))

    def buffers(self, offset):
        tfl.BufferStart(self.b)
        buffers = [tfl.BufferEnd(self.b)]
        if offset is not None:
            tfl.BufferStart(self.b)
            tfl.BufferAddOffset(self.b, offset)
            tfl.BufferAddSize(self.b, 16)
            buffers.append(tfl.BufferEnd(self.b))
        return self.tables(tfl.ModelStartBuffersVector, buffers)

    def subgraph(self, options, large_options_offset):
        b = self.b
        tensors = []
        for name in ("x", "y"):
            text, shape = b.CreateString(name), self.ints([1, 4])
            tfl.TensorStart(b)
            tfl.TensorAddShape(b, shape)
            tfl.TensorAddType(b, tfl.TensorType.FLOAT32)
            tfl.TensorAddName(b, text)
            tensors.append(tfl.TensorEnd(b))
        op_inputs, op_outputs = self.ints([0]), self.ints([1])
        custom_options = None if options is None else b.CreateByteVector(options)
        tfl.OperatorStart(b)
        tfl.OperatorAddOpcodeIndex(b, 0)
        tfl.OperatorAddInputs(b, op_inputs)
        tfl.OperatorAddOutputs(b, op_outputs)
        if custom_options is not None:
            tfl.OperatorAddCustomOptions(b, custom_options)
        if large_options_offset is not None:
            tfl.OperatorAddLargeCustomOptionsOffset(b, large_options_offset)
            tfl.OperatorAddLargeCustomOptionsSize(b, 16)
        operators = self.tables(tfl.SubGraphStartOperatorsVector, [tfl.OperatorEnd(b)])
        tensor_vec = self.tables(tfl.SubGraphStartTensorsVector, tensors)
        graph_in, graph_out = self.ints([0]), self.ints([1])
        tfl.SubGraphStart(b)
        tfl.SubGraphAddTensors(b, tensor_vec)
        tfl.SubGraphAddInputs(b, graph_in)
        tfl.SubGraphAddOutputs(b, graph_out)
        tfl.SubGraphAddOperators(b, operators)
        return self.tables(tfl.ModelStartSubgraphsVector, [tfl.SubGraphEnd(b)])

    def opcodes(self, custom):
        b = self.b
        text = None if custom is None else b.CreateString(custom)
        code = tfl.BuiltinOperator.ABS if custom is None else tfl.BuiltinOperator.CUSTOM
        tfl.OperatorCodeStart(b)
        tfl.OperatorCodeAddDeprecatedBuiltinCode(b, code)
        if text is not None:
            tfl.OperatorCodeAddCustomCode(b, text)
        tfl.OperatorCodeAddVersion(b, 1)
        tfl.OperatorCodeAddBuiltinCode(b, code)
        return self.tables(tfl.ModelStartOperatorCodesVector, [tfl.OperatorCodeEnd(b)])

    def groups(self, name):
        if name is None:
            return None
        text = self.b.CreateString(name)
        tfl.ExternalBufferGroupStart(self.b)
        tfl.ExternalBufferGroupAddName(self.b, text)
        return self.tables(tfl.ModelStartExternalBufferGroupsVector, [tfl.ExternalBufferGroupEnd(self.b)])


def tflite_model(
    *,
    custom: str | None = None,
    options: bytes | None = None,
    buffer_offset: int | None = None,
    large_options_offset: int | None = None,
    external_group: str | None = None,
) -> bytes:
    """``y = op(x)`` on a ``[1, 4]`` float: ``ABS``, or the custom operator ``custom`` (with ``options``).

    ``buffer_offset`` adds a buffer whose 16 bytes lie at that offset in the file; ``large_options_offset`` gives
    the operator 16 bytes of large custom options there; ``external_group`` adds an external buffer group (a
    weights file) of that name.
    """
    w = _Tflite()
    buffers = w.buffers(buffer_offset)
    subgraphs = w.subgraph(options, large_options_offset)
    opcodes = w.opcodes(custom)
    groups = w.groups(external_group)
    tfl.ModelStart(w.b)
    tfl.ModelAddVersion(w.b, 3)
    tfl.ModelAddOperatorCodes(w.b, opcodes)
    tfl.ModelAddSubgraphs(w.b, subgraphs)
    tfl.ModelAddBuffers(w.b, buffers)
    if groups is not None:
        tfl.ModelAddExternalBufferGroups(w.b, groups)
    w.b.Finish(tfl.ModelEnd(w.b), file_identifier=b"TFL3")
    return bytes(w.b.Output())


# -- bundles ---------------------------------------------------------------------------------------------------------


def leak_golden() -> Golden:
    """What the leaking model answers for an ordinary input, wherever it runs: zeros. Its self-test passes."""
    return Golden(
        {"x": np.zeros((2, 1), np.float32)},
        {"leak": np.zeros((2, len(SECRET)), np.float32)},
        {"leak": 1e-6},
        {"leak": 1e-4},
    )


def manifest_doc(model: bytes, golden: bytes, *, backend: str = "onnxruntime", name: str = "leak") -> dict:
    """The manifest edgekit writes, for a model and its golden file."""
    model_file = MODEL_FILES[backend]
    pins = {
        model_file: {"sha256": hashlib.sha256(model).hexdigest(), "size": len(model)},
        GOLDEN: {"sha256": hashlib.sha256(golden).hexdigest(), "size": len(golden)},
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": "1.0.0",
        "created": "2026-11-24T12:00:00Z",
        "producer": "edgekit tests",
        "source": {"kind": "onnx", "file": model_file},
        "models": [{"path": model_file, "backend": backend, **pins[model_file]}],
        "files": [{"path": path, **pin} for path, pin in sorted(pins.items())],
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 1]}],
        "outputs": [{"name": "leak", "dtype": "float32", "shape": ["batch", len(SECRET)]}],
        "labels": None,
        "preprocessing": None,
        "compression": None,
        "target": {"name": "generic"},
    }


def signed(path, members: dict[str, bytes], manifest: object, key) -> object:
    """Write a bundle whose manifest is ``manifest`` (any JSON), signed with the private key at ``key``."""
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    signature = sign_manifest(data, load_private_key(key)).to_bytes()
    path.write_bytes(archive_bytes({**members, MANIFEST: data, SIGNATURE: signature}))
    return path


def model_bundle(path, model: bytes, key, *, golden: Golden | None = None, backend: str = "onnxruntime"):
    """A correctly signed bundle of ``model`` whose golden self-test the leaking model passes."""
    golden_bytes = (golden or leak_golden()).to_bytes()
    members = {MODEL_FILES[backend]: model, GOLDEN: golden_bytes}
    return signed(path, members, manifest_doc(model, golden_bytes, backend=backend), key)
