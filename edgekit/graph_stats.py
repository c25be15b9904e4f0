"""Facts about an ONNX graph: tensor specs, parameter counts, op histograms, quantization state.

Pure functions over :class:`onnx.ModelProto`; used by ``edgekit inspect``, by every pass (before /
after stats) and by the report.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

Dim = int | str | None

#: op types whose presence means a graph is already quantized
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "MatMulInteger",
        "ConvInteger",
        "QGemm",
        "DynamicQuantizeMatMul",
        "MatMulNBits",
    }
)
FLOAT_TYPES = frozenset({"float32", "float16", "float64", "bfloat16"})


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type (a NumPy dtype name) and shape of a graph input or output."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None  # None: rank unknown

    @property
    def batch_dim(self) -> Dim:
        """The first dimension, which is the batch axis for almost every edge model."""
        return self.shape[0] if self.shape else None

    def shape_text(self) -> str:
        """Render the shape the way users read it: ``[N, 3, 224, 224]``."""
        if self.shape is None:
            return "?"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
        }


@dataclass(frozen=True)
class WeightStats:
    """Parameter count and bytes of a graph's weights, by element type."""

    param_count: int
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """All weight bytes."""
        return sum(self.bytes_by_dtype.values())

    @property
    def float_bytes(self) -> int:
        """Bytes held in floating-point weights (what quantization can shrink)."""
        return sum(v for k, v in self.bytes_by_dtype.items() if k in FLOAT_TYPES)


def dtype_name(elem_type: int) -> str:
    """NumPy-style name of an ONNX element type (``1`` → ``float32``)."""
    import onnx

    if elem_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def _spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value_info.type.tensor_type
    shape: tuple[Dim, ...] | None = None
    if tensor_type.HasField("shape"):
        dims: list[Dim] = []
        for d in tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return TensorSpec(value_info.name, dtype_name(tensor_type.elem_type), shape)


def graph_inputs(model: onnx.ModelProto) -> list[TensorSpec]:
    """Real inputs: graph inputs that are not also initializers (old exporters list weights as inputs)."""
    weights = {t.name for t in model.graph.initializer}
    return [_spec(v) for v in model.graph.input if v.name not in weights]


def graph_outputs(model: onnx.ModelProto) -> list[TensorSpec]:
    """Graph outputs."""
    return [_spec(v) for v in model.graph.output]


def _tensor_weight(t: onnx.TensorProto) -> tuple[str, int, int]:
    count = math.prod(t.dims)
    name = dtype_name(t.data_type)
    itemsize = {"bfloat16": 2, "bool": 1}.get(name)
    if itemsize is None:
        import numpy as np

        try:
            itemsize = np.dtype(name).itemsize
        except TypeError:
            itemsize = 1
    return name, count, count * itemsize


def constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a ``Constant`` node produces, or ``None`` for forms that cannot be an initializer."""
    import numpy as np
    from onnx import numpy_helper

    for attr in node.attribute:
        tensor: onnx.TensorProto
        if attr.name == "value":
            tensor = type(attr.t)()
            tensor.CopyFrom(attr.t)
            return tensor
        values = {
            "value_float": (attr.f, np.float32),
            "value_floats": (list(attr.floats), np.float32),
            "value_int": (attr.i, np.int64),
            "value_ints": (list(attr.ints), np.int64),
        }
        if attr.name in values:
            data, dtype = values[attr.name]
            tensor = numpy_helper.from_array(np.array(data, dtype=dtype))
            return tensor
    return None  # sparse_value / strings stay nodes


def weight_stats(model: onnx.ModelProto) -> WeightStats:
    """Count parameters in initializers and in ``Constant`` nodes (every form that is a number tensor)."""
    by_dtype: Counter[str] = Counter()
    params = 0
    tensors = list(model.graph.initializer)
    constants = (constant_tensor(n) for n in model.graph.node if n.op_type == "Constant")
    tensors += [t for t in constants if t is not None]
    for t in tensors:
        name, count, nbytes = _tensor_weight(t)
        params += count
        by_dtype[name] += nbytes
    return WeightStats(params, dict(sorted(by_dtype.items())))


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Node count by op type (custom domains prefixed), most frequent first."""
    counts = Counter(n.op_type if n.domain in {"", "ai.onnx"} else f"{n.domain}.{n.op_type}" for n in model.graph.node)
    return dict(counts.most_common())


def quantization_state(model: onnx.ModelProto) -> str | None:
    """Say how a graph is quantized already, or ``None`` when it is not."""
    ops = {n.op_type for n in model.graph.node}
    found = sorted(ops & QUANTIZED_OPS)
    if found:
        return "has " + ", ".join(found)
    stats = weight_stats(model)
    int_weights = sum(v for k, v in stats.bytes_by_dtype.items() if k in {"int8", "uint8", "int4", "uint4"})
    if stats.total_bytes and int_weights > stats.total_bytes / 2:
        return "most weights are 8-bit or narrower"
    if stats.total_bytes and stats.bytes_by_dtype.get("float16", 0) > stats.total_bytes / 2:
        return "most weights are float16"
    return None


def opsets(model: onnx.ModelProto) -> dict[str, int]:
    """Opset version by domain (``""`` is the default ONNX domain, shown as ``ai.onnx``)."""
    return {(o.domain or "ai.onnx"): o.version for o in model.opset_import}


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset version."""
    return opsets(model).get("ai.onnx", 0)
