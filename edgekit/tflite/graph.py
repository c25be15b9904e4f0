"""The TFLite graph edgekit builds in memory before it writes the FlatBuffer.

It mirrors the schema's ``SubGraph`` closely, with plain Python values: tensors are numbered in
the order they are added, operators name their inputs and outputs by those numbers (``-1`` for an
optional input left out), and a constant tensor carries its data. Op codes, option tables, enum
values and fields are spelled as the schema spells them (``"CONV_2D"``, ``"Conv2DOptions"``,
``"SAME"``, ``"StrideW"``), so :mod:`edgekit.tflite.flatbuffer` is the only module that needs the
generated ``tflite`` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: an option field's value: a number, a flag, or the name of an enum member (``"RELU6"``, ``"INT64"``);
#: ``int`` is part of ``float`` to a type checker
OptionValue = float | bool | str

#: the fused activations TFLite ops can apply to their own output
FUSABLE_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: per tensor (one scale) or per channel along ``axis``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0


@dataclass
class Tensor:
    """One tensor of the subgraph; ``data`` is set for constants."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    data: np.ndarray | None = None
    quantization: Quantization | None = None
    #: the ONNX values this tensor holds (several when Identity or Transpose alias it)
    onnx_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """An op's builtin options table, by the schema's table and field names."""

    table: str
    fields: Mapping[str, OptionValue] = field(default_factory=dict)

    def replace(self, **changes: OptionValue) -> Options:
        """A copy with some fields changed."""
        return Options(self.table, {**self.fields, **changes})


@dataclass
class Operator:
    """One builtin operator."""

    opcode: str
    inputs: list[int]
    outputs: list[int]
    options: Options | None = None


@dataclass
class Graph:
    """A single-subgraph TFLite model under construction."""

    tensors: list[Tensor] = field(default_factory=list)
    operators: list[Operator] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    #: graph input and output name → tensor, for the ``serving_default`` signature
    signature_inputs: dict[str, int] = field(default_factory=dict)
    signature_outputs: dict[str, int] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set, repr=False)

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: np.dtype[np.generic] | type[np.generic] | str,
        *,
        data: np.ndarray | None = None,
        quantization: Quantization | None = None,
    ) -> int:
        """Add a tensor under a unique name (a suffix is added to a name already taken); return its index."""
        unique = name
        n = 1
        while unique in self._names:
            unique = f"{name}_{n}"
            n += 1
        self._names.add(unique)
        self.tensors.append(Tensor(unique, tuple(int(d) for d in shape), np.dtype(dtype), data, quantization))
        return len(self.tensors) - 1

    def add_constant(self, array: np.ndarray, name: str, *, quantization: Quantization | None = None) -> int:
        """Add a constant tensor holding ``array`` (copied, C-contiguous)."""
        data = np.ascontiguousarray(array)
        return self.add_tensor(name, data.shape, data.dtype, data=data, quantization=quantization)

    def add_operator(
        self, opcode: str, inputs: Sequence[int], outputs: Sequence[int], options: Options | None = None
    ) -> Operator:
        """Append an operator (operators run in the order they were added)."""
        op = Operator(opcode, list(inputs), list(outputs), options)
        self.operators.append(op)
        return op

    def rename(self, index: int, name: str) -> None:
        """Give a tensor a new name (graph inputs and outputs carry their ONNX names)."""
        self._names.discard(self.tensors[index].name)
        if name in self._names:
            other = next(i for i, t in enumerate(self.tensors) if t.name == name)
            self.rename(other, f"{name}_internal")
        self._names.add(name)
        self.tensors[index].name = name

    def is_constant(self, index: int) -> bool:
        """Whether the tensor holds data."""
        return index >= 0 and self.tensors[index].data is not None

    def op_counts(self) -> dict[str, int]:
        """Operators by op code, most frequent first."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.opcode] = counts.get(op.opcode, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
