"""Options of the ONNX → TFLite writer, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from edgekit.errors import ConfigError
from edgekit.passes.base import PassConfig

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

Variant = Literal["fp32", "fp16", "int8"]
VARIANTS: tuple[Variant, ...] = ("fp32", "fp16", "int8")
IoLayout = Literal["channels-last", "onnx"]
IO_LAYOUTS: tuple[IoLayout, ...] = ("channels-last", "onnx")
Int8Io = Literal["float", "int8"]


@dataclass(frozen=True)
class TFLiteConfig(PassConfig):
    """Options of :func:`edgekit.tflite.convert`."""

    #: ``fp32``; ``fp16`` (float16 weights, dequantized at load); ``int8`` (needs the static INT8 QDQ model)
    variant: Variant = "fp32"
    #: ``channels-last``: image inputs and outputs take NHWC, as TFLite's own models do;
    #: ``onnx``: every input and output keeps its ONNX layout, with a TRANSPOSE at the edge of the graph
    io_layout: IoLayout = "channels-last"
    #: fixed shapes for inputs with free dimensions other than the batch, in ONNX layout
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: the batch size a free first dimension becomes (TFLite models have static shapes here)
    batch_size: int = 1
    #: ``int8`` variant only: whether the model takes and returns float or int8 tensors
    int8_io: Int8Io = "float"

    def __post_init__(self) -> None:
        """Refuse values that cannot work, before any work."""
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown TFLite variant '{self.variant}': choose from {', '.join(VARIANTS)}")
        if self.io_layout not in IO_LAYOUTS:
            raise ConfigError(f"unknown io_layout '{self.io_layout}': choose from {', '.join(IO_LAYOUTS)}")
        if self.int8_io not in ("float", "int8"):
            raise ConfigError(f"unknown int8_io '{self.int8_io}': choose float or int8")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size {self.batch_size} is not positive: use 1 or more")
        for name, shape in self.input_shapes.items():
            if not shape or any(int(d) < 1 for d in shape):
                raise ConfigError(f"input_shapes['{name}'] = {tuple(shape)} is not a static shape: give every dim")


@dataclass(frozen=True)
class TensorLayout:
    """One input or output of the written model: its name, TFLite shape and type, and its layout.

    ``perm[j]`` is the ONNX axis that TFLite axis ``j`` holds: feed ``x.transpose(perm)`` for an
    ONNX-layout array ``x``, and read an output back with ``y.transpose(inverse(perm))``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    perm: tuple[int, ...]
    #: int8 tensors: ``real = scale * (q - zero_point)``
    scale: float | None = None
    zero_point: int | None = None

    @property
    def layout(self) -> str:
        """``NHWC`` for channels-last image tensors, ``NCHW`` for 4-D ones kept as in ONNX, else ``onnx``."""
        rank = len(self.perm)
        if rank == 4:  # noqa: PLR2004
            return "NHWC" if self.perm == (0, 2, 3, 1) else "NCHW" if self.perm == (0, 1, 2, 3) else str(self.perm)
        return "onnx" if self.perm == tuple(range(rank)) else str(self.perm)

    def manifest(self) -> dict[str, object]:
        """Name, shape, type, layout, and the int8 encoding when there is one."""
        out: dict[str, object] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
        }
        if self.scale is not None:
            out |= {"scale": self.scale, "zero_point": self.zero_point}
        return out

    def to_json(self) -> dict[str, object]:
        """:meth:`manifest` and ``perm``: all it takes to build it again (:meth:`from_json`)."""
        return self.manifest() | {"perm": list(self.perm)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TensorLayout:
        """Read back what :meth:`to_json` wrote."""
        scale, zero_point = doc.get("scale"), doc.get("zero_point")
        return cls(
            str(doc["name"]),
            tuple(int(d) for d in doc["shape"]),
            str(doc["dtype"]),
            tuple(int(p) for p in doc["perm"]),
            None if scale is None else float(scale),
            None if zero_point is None else int(zero_point),
        )


@dataclass(frozen=True)
class TFLiteModel:
    """A converted model: the FlatBuffer bytes and what a caller needs to feed it."""

    data: bytes
    variant: Variant
    inputs: tuple[TensorLayout, ...]
    outputs: tuple[TensorLayout, ...]
    #: TFLite operators by op code
    op_counts: dict[str, int]
    #: what the conversion could not do exactly as ONNX does, in one line each
    warnings: tuple[str, ...] = ()
    #: facts for the report (``fp16_constants``; ``activation_scales``: how many came from the QDQ model)
    details: dict[str, object] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Write the ``.tflite`` file."""
        path.write_bytes(self.data)
        return path

    def manifest(self) -> dict[str, object]:
        """The layout facts a bundle manifest records."""
        return {
            "format": "tflite",
            "variant": self.variant,
            "inputs": [t.manifest() for t in self.inputs],
            "outputs": [t.manifest() for t in self.outputs],
        }

    def layouts(self) -> dict[str, list[dict[str, object]]]:
        """Every input's and output's :meth:`TensorLayout.to_json` (what ``report.json`` keeps)."""
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_layouts(cls, data: bytes, variant: Variant, layouts: Mapping[str, Any]) -> TFLiteModel:
        """A model back from its bytes and :meth:`layouts` (op counts and details are not kept)."""
        inputs = tuple(TensorLayout.from_json(t) for t in layouts["inputs"])
        outputs = tuple(TensorLayout.from_json(t) for t in layouts["outputs"])
        return cls(data, variant, inputs, outputs, {})
