"""What op converters share while they build the TFLite graph: values, their layouts, and helpers.

An ONNX value becomes a :class:`Value`: the TFLite tensor that holds it and the layout it is held in
(see :mod:`edgekit.tflite.layout`). Constants stay ONNX arrays until an op asks for one in a layout;
then they are written once per layout. :meth:`Context.tensor` hands an op a value in the layout it
wants, inserting a ``TRANSPOSE`` (once per value and layout) only when the layouts differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.tflite import layout
from edgekit.tflite.graph import Options, OptionValue

if TYPE_CHECKING:
    from collections.abc import Sequence

    import onnx

    from edgekit.tflite.graph import Graph
    from edgekit.tflite.layout import Perm
    from edgekit.tflite.prepare import Prepared


@dataclass(frozen=True)
class Value:
    """An ONNX value in the TFLite graph: tensor index and layout."""

    tensor: int
    perm: Perm


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class Context:
    """The graph being built and the ONNX values converted so far."""

    def __init__(self, graph: Graph, prepared: Prepared) -> None:
        """Start with no values converted."""
        self.graph = graph
        self.prepared = prepared
        self.values: dict[str, Value] = {}
        self._constants: dict[tuple[str, Perm], int] = {}
        self._transposes: dict[tuple[int, Perm], int] = {}

    # -- what the ONNX graph says -----------------------------------------------------------------

    @property
    def opset(self) -> int:
        """The model's default-domain opset."""
        return self.prepared.opset

    def shape(self, name: str) -> tuple[int, ...]:
        """The static ONNX shape of a value."""
        return self.prepared.shapes[name]

    def dtype(self, name: str) -> np.dtype[Any]:
        """The element type of a value."""
        return self.prepared.dtypes.get(name, np.dtype(np.float32))

    def is_constant(self, name: str) -> bool:
        """Whether a value is an initializer (after folding)."""
        return name in self.prepared.constants

    def constant(self, name: str) -> np.ndarray:
        """An initializer's data."""
        return self.prepared.constants[name]

    def add_constant_value(self, name: str, array: np.ndarray) -> str:
        """Register a constant the converters derived (a reciprocal, say) as if ONNX had it; return its name."""
        self.prepared.constants[name] = array
        self.prepared.shapes[name] = tuple(array.shape)
        self.prepared.dtypes[name] = array.dtype
        return name

    def perm(self, name: str) -> Perm:
        """The layout a value is held in (constants: the ONNX order)."""
        if name in self.values:
            return self.values[name].perm
        return layout.identity(len(self.shape(name)))

    # -- tensors ---------------------------------------------------------------------------------

    def tensor(self, name: str, perm: Perm | None = None) -> int:
        """The tensor holding ONNX value ``name`` in layout ``perm`` (its own layout when ``None``)."""
        if self.is_constant(name):
            perm = perm if perm is not None else layout.identity(self.constant(name).ndim)
            key = (name, perm)
            if key not in self._constants:
                data = np.transpose(self.constant(name), perm) if perm else self.constant(name)
                self._constants[key] = self.graph.add_constant(data, name)
            return self._constants[key]
        value = self.values[name]
        if perm is None or perm == value.perm:
            return value.tensor
        return self.transpose(value.tensor, layout.transpose_perm(value.perm, perm))

    def value(self, name: str) -> Value:
        """ONNX value ``name`` as converted so far (a constant becomes a tensor in ONNX order)."""
        if name not in self.values and self.is_constant(name):
            return Value(self.tensor(name), layout.identity(self.constant(name).ndim))
        return self.values[name]

    def transpose(self, tensor: int, perm: Perm) -> int:
        """``TRANSPOSE`` a tensor (cached: each tensor is transposed one way at most once)."""
        if perm == layout.identity(len(perm)):
            return tensor
        key = (tensor, perm)
        if key not in self._transposes:
            src = self.graph.tensors[tensor]
            shape = layout.apply(perm, src.shape)
            out = self.graph.add_tensor(f"{src.name}_transposed", shape, src.dtype)
            self.graph.add_operator("TRANSPOSE", [tensor, self.ints(perm, "perm")], [out])
            self._transposes[key] = out
        return self._transposes[key]

    def const(self, array: np.ndarray, name: str) -> int:
        """A new constant tensor."""
        return self.graph.add_constant(np.ascontiguousarray(array), name)

    def ints(self, values: Sequence[int], name: str) -> int:
        """A new int32 constant (shapes, axes, paddings)."""
        return self.const(np.asarray(values, dtype=np.int32), name)

    def temp(self, name: str, shape: Sequence[int], dtype: np.dtype[Any] | type[np.generic] = np.float32) -> int:
        """A new intermediate tensor."""
        return self.graph.add_tensor(name, shape, np.dtype(dtype))

    def op(self, opcode: str, inputs: Sequence[int], outputs: Sequence[int], options: Options | None = None) -> None:
        """Append an operator."""
        self.graph.add_operator(opcode, inputs, outputs, options)

    def emit(
        self,
        opcode: str,
        inputs: Sequence[int],
        output: str,
        perm: Perm,
        options: Options | None = None,
        *,
        dtype: np.dtype[Any] | None = None,
    ) -> int:
        """Append an op writing ONNX value ``output`` in layout ``perm``; bind and return its tensor."""
        shape = layout.apply(perm, self.shape(output))
        out = self.graph.add_tensor(output, shape, dtype if dtype is not None else self.dtype(output))
        self.graph.add_operator(opcode, inputs, [out], options)
        self.bind(output, out, perm)
        return out

    def bind(self, name: str, tensor: int, perm: Perm) -> None:
        """Record that ONNX value ``name`` is ``tensor`` in layout ``perm``."""
        self.values[name] = Value(tensor, perm)
        self.graph.tensors[tensor].onnx_names.append(name)

    def reshape(self, tensor: int, shape: Sequence[int], name: str) -> int:
        """``RESHAPE`` a tensor to a static shape (a no-op when it already has it)."""
        if tuple(self.graph.tensors[tensor].shape) == tuple(shape):
            return tensor
        src = self.graph.tensors[tensor]
        out = self.graph.add_tensor(name, shape, src.dtype)
        self.graph.add_operator("RESHAPE", [tensor, self.ints(shape, f"{name}_shape")], [out])
        return out

    # -- helpers many ops need -------------------------------------------------------------------

    def broadcast_operand(self, name: str, perm: Perm) -> int:
        """An operand of a broadcasting op whose output has layout ``perm``, as a tensor that broadcasts in it.

        ONNX broadcasting lines shapes up from the right; the operand is given the output's rank
        (leading 1s) and then the output's layout. A scalar constant stays a scalar.
        """
        rank = len(perm)
        shape = self.shape(name)
        if self.is_constant(name):
            data = self.constant(name)
            if data.ndim in (0, rank):
                return self.tensor(name, perm if data.ndim else None)
            key = (f"{name}#rank{rank}", perm)
            if key not in self._constants:
                self._constants[key] = self.array_operand(data, perm, name)
            return self._constants[key]
        if len(shape) == rank:
            return self.tensor(name, perm)
        full = (1,) * (rank - len(shape)) + tuple(shape)
        flat = self.tensor(name, layout.identity(len(shape)))
        expanded = self.reshape(flat, full, f"{name}_rank{rank}")
        return self.transpose(expanded, perm)

    def array_operand(self, data: np.ndarray, perm: Perm, name: str) -> int:
        """A constant operand of a broadcasting op whose output has layout ``perm``."""
        rank = len(perm)
        full = data.reshape((1,) * (rank - data.ndim) + data.shape)
        return self.const(np.transpose(full, perm), name)

    def common_perm(self, names: Sequence[str], rank: int) -> Perm:
        """The layout for an op mixing ``names``: that of the first non-constant input of the output's rank."""
        for name in names:
            if name and not self.is_constant(name) and len(self.shape(name)) == rank:
                return self.perm(name)
        return layout.identity(rank)


def no_activation(table: str, **fields: OptionValue) -> Options:
    """Options of an op that can fuse an activation, with none fused yet."""
    return Options(table, {"FusedActivationFunction": "NONE", **fields})
