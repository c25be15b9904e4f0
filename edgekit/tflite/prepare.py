"""Put an ONNX model in the form the TFLite writer converts: static shapes, constants folded, BN folded.

1. weights stored as ``Constant`` nodes become initializers (the validate pass's rewrite);
2. every input gets a static shape: a free first dimension becomes ``batch_size``, other free
   dimensions come from ``input_shapes`` or stop the conversion;
3. shape inference and constant folding alternate until nothing changes, so shape arithmetic
   (``Shape → Gather → Concat → Reshape``) becomes constants;
4. ``BatchNormalization`` and per-channel ``Add`` after a ``Conv`` are folded into it, and
   ``MatMul + Add`` on 2-D inputs becomes ``Gemm`` (:mod:`edgekit.tflite.fold`).

Nothing here writes files or changes the caller's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import TFLiteConversionError
from edgekit.passes.quantize_common import ensure_node_names
from edgekit.passes.validate import lift_constants
from edgekit.tflite.fold import fold_batchnorm, fold_conv_add, matmul_add_to_gemm

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.config import TFLiteConfig

_DEFAULT_DOMAINS = ("", "ai.onnx")
#: ops that make new values without reading any (random generators): never folded
_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
_MAX_FOLD_ROUNDS = 8


@dataclass
class Prepared:
    """A model ready to convert, and what the converters read about its values."""

    model: onnx.ModelProto
    opset: int
    inputs: list[str]
    outputs: list[str]
    constants: dict[str, np.ndarray]
    #: static ONNX shape of every value whose shape is known
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, np.dtype[Any]] = field(default_factory=dict)

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        """The graph's nodes, in order."""
        return list(self.model.graph.node)


def prepare(model: onnx.ModelProto, config: TFLiteConfig) -> Prepared:
    """A copy of ``model`` with static shapes and folded constants (see the module docstring)."""
    import onnx

    work = onnx.ModelProto()
    work.CopyFrom(model)
    graph = work.graph
    lift_constants(graph)
    ensure_node_names(work)
    init_names = {t.name for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in init_names]
    del graph.input[:]
    graph.input.extend(real_inputs)
    _fix_input_shapes(work, config)
    del graph.value_info[:]
    for out in graph.output:  # the declared output shapes name free dims inference would keep
        out.type.tensor_type.ClearField("shape")
    for _ in range(_MAX_FOLD_ROUNDS):
        work = _infer(work)
        if _annotate_ml_shapes(work):
            work = _infer(work)
        if not _fold_constants(work):
            break
    shapes = _shapes(work)
    fold_batchnorm(work)
    fold_conv_add(work, shapes)
    matmul_add_to_gemm(work, shapes)
    work = _infer(work)
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in work.graph.initializer}
    prepared = Prepared(
        work,
        opset=next((o.version for o in work.opset_import if o.domain in _DEFAULT_DOMAINS), 1),
        inputs=[i.name for i in work.graph.input],
        outputs=[o.name for o in work.graph.output],
        constants=constants,
    )
    prepared.shapes = _shapes(work)
    prepared.dtypes = _dtypes(work)
    for name, array in constants.items():
        prepared.shapes[name] = tuple(array.shape)
        prepared.dtypes[name] = array.dtype
    return prepared


def _fix_input_shapes(model: onnx.ModelProto, config: TFLiteConfig) -> None:
    known = {i.name for i in model.graph.input}
    unknown = sorted(set(config.input_shapes) - known)
    if unknown:
        msg = f"input_shapes names {', '.join(unknown)}, which the model does not have: its inputs are "
        raise TFLiteConversionError(msg + ", ".join(sorted(known)))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        given = config.input_shapes.get(inp.name)
        if given is not None:
            if len(given) != len(dims):
                msg = f"input_shapes['{inp.name}'] has rank {len(given)} but the input has rank {len(dims)}"
                raise TFLiteConversionError(f"{msg}: give one size per dimension")
            for dim, size in zip(dims, given, strict=True):
                dim.Clear()
                dim.dim_value = int(size)
            continue
        shown = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else d.dim_param or "?" for d in dims]
        free = [axis for axis, size in enumerate(shown) if isinstance(size, str)]
        beyond_batch = [axis for axis in free if axis > 0]
        if beyond_batch:
            msg = (
                f"input '{inp.name}' has shape {shown} with a free dimension {beyond_batch[0]}: "
                f"TFLite needs static shapes; give one with input_shapes={{'{inp.name}': (...)}}"
            )
            raise TFLiteConversionError(msg)
        if free:
            dims[0].Clear()
            dims[0].dim_value = config.batch_size


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise TFLiteConversionError(f"ONNX shape inference fails ({first}): check the model's input shapes") from exc


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    out = {}
    graph = model.graph
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            out[vi.name] = tuple(dims)
    for t in graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


def _annotate_ml_shapes(model: onnx.ModelProto) -> bool:
    """Shapes ONNX's inference leaves out for ``ai.onnx.ml`` ops the writer converts; return whether any was added."""
    from onnx import helper

    shapes = _shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*model.graph.input, *model.graph.value_info]}
    types |= {t.name: t.data_type for t in model.graph.initializer}
    added = False
    for node in model.graph.node:
        if node.op_type != "ArrayFeatureExtractor" or node.output[0] in shapes:
            continue
        x, indices = shapes.get(node.input[0]), shapes.get(node.input[1])
        if x is None or indices is None or node.input[0] not in types:
            continue
        count = int(np.prod(indices))
        shape = (1, count) if len(x) == 1 else (*x[:-1], count)  # what onnxruntime returns
        model.graph.value_info.append(helper.make_tensor_value_info(node.output[0], types[node.input[0]], shape))
        added = True
    return added


def _dtypes(model: onnx.ModelProto) -> dict[str, np.dtype[Any]]:
    from onnx import helper

    out = {}
    graph = model.graph
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        elem = vi.type.tensor_type.elem_type
        if elem:
            out[vi.name] = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
    return out


def _fold_constants(model: onnx.ModelProto) -> bool:
    """Evaluate nodes whose inputs are all constant (and ``Shape`` of static values); return whether any was."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    shapes = _shapes(model)
    kept = []
    folded = False
    for node in graph.node:
        values = _fold(node, constants, outputs, shapes, model)
        if values is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, values, strict=False):
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
            constants.add(name)
        folded = True
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
    return folded


def _fold(
    node: onnx.NodeProto,
    constants: set[str],
    outputs: set[str],
    shapes: dict[str, tuple[int, ...]],
    model: onnx.ModelProto,
) -> list[np.ndarray] | None:
    if node.domain not in _DEFAULT_DOMAINS or node.op_type in _NOT_FOLDABLE or set(node.output) & outputs:
        return None
    if node.op_type == "Shape" and node.input[0] in shapes and not node.attribute:
        return [np.array(shapes[node.input[0]], dtype=np.int64)]
    inputs = [i for i in node.input if i]
    if not inputs or any(i not in constants for i in inputs):
        return None
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    by_name = {t.name: t for t in model.graph.initializer}
    feeds = {i: numpy_helper.to_array(by_name[i]) for i in inputs}
    values = [helper.make_tensor_value_info(i, by_name[i].data_type, None) for i in inputs]
    results = [helper.make_tensor_value_info(o, 0, None) for o in node.output]
    single = helper.make_graph([node], "fold", values, results)
    one = helper.make_model(single, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        return list(ReferenceEvaluator(one).run(None, feeds))
    except Exception:  # noqa: BLE001  (the reference runtime raises anything; the node is then converted as it is)
        return None
