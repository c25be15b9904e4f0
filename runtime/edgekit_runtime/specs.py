"""What a model takes and gives, and the check every request goes through before it reaches the backend.

A :class:`TensorSpec` holds a name, a NumPy dtype name and a shape whose dimensions are integers (fixed),
strings (named dynamic axes, like ``"batch"``) or ``None`` (unnamed dynamic). :func:`validate` turns what a
client sent into the arrays the backend needs, or raises :class:`InvalidInputError` saying what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit_runtime.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

Dim = int | str | None

_IMAGE_RANK = 4
#: element kinds a value may be converted from without losing meaning (JSON numbers arrive as int or float)
_SAFE_FROM = {"f": "fiu", "i": "iu", "u": "iu", "b": "b", "U": "UO", "O": "UO"}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None
    #: how the axes are laid out, when the bundle says (a ``.tflite`` model edgekit converted: ``NHWC``, ``NCHW``)
    layout: str | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TensorSpec:
        """From a bundle manifest's ``inputs``/``outputs`` entry."""
        shape = doc.get("shape")
        layout = doc.get("layout")
        return cls(
            str(doc["name"]),
            str(doc["dtype"]),
            None if shape is None else tuple(shape),
            None if layout is None else str(layout),
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest form (``layout`` only when known)."""
        doc = {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}
        return doc if self.layout is None else doc | {"layout": self.layout}

    @property
    def batched(self) -> bool:
        """The first axis is free: requests may stack any number of samples."""
        return bool(self.shape) and not isinstance(self.shape[0], int)  # type: ignore[index]

    def shape_text(self) -> str:
        """``[batch, 3, 224, 224]``; unnamed dynamic axes as ``?``."""
        if self.shape is None:
            return "[...]"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether a concrete shape fits this spec."""
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            not isinstance(want, int) or want == got for want, got in zip(self.shape, shape, strict=True)
        )


def validate(
    inputs: Mapping[str, Any], specs: Sequence[TensorSpec], *, max_elements: int | None = None
) -> dict[str, np.ndarray]:
    """Check ``inputs`` by name, dtype and shape; convert safe dtype differences (JSON ints to float32)."""
    expected = {s.name: s for s in specs}
    unknown = sorted(set(inputs) - set(expected))
    missing = [name for name in expected if name not in inputs]
    if unknown or missing:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"'{m}'" for m in missing))
        if unknown:
            parts.append("unknown " + ", ".join(f"'{u}'" for u in unknown))
        wanted = ", ".join(f"'{s.name}' {s.dtype} {s.shape_text()}" for s in specs)
        raise InvalidInputError(f"inputs do not match the model ({'; '.join(parts)}): it takes {wanted}")
    out: dict[str, np.ndarray] = {}
    batch: int | None = None
    for spec in specs:
        array = _as_array(inputs[spec.name], spec)
        if max_elements is not None and array.size > max_elements:
            raise InvalidInputError(
                f"input '{spec.name}' has {array.size} elements, more than the {max_elements} allowed: "
                "send fewer samples per request",
                input_name=spec.name,
            )
        if not spec.fits(array.shape):
            raise InvalidInputError(
                f"input '{spec.name}' expects shape {spec.shape_text()} ({spec.dtype}), got {list(array.shape)}"
                + _shape_hint(spec, array.shape),
                input_name=spec.name,
            )
        if array.size == 0:  # engines fail on empty tensors in their own ways: never the model's fault
            raise InvalidInputError(
                f"input '{spec.name}' has shape {list(array.shape)}, which holds no values: send at least one sample",
                input_name=spec.name,
            )
        if spec.batched and array.ndim:
            if batch is not None and array.shape[0] != batch:
                raise InvalidInputError(
                    f"input '{spec.name}' has {array.shape[0]} samples where the other inputs have {batch}: "
                    "send the same number of samples for every input",
                    input_name=spec.name,
                )
            batch = array.shape[0]
        out[spec.name] = array
    return out


def _as_array(value: Any, spec: TensorSpec) -> np.ndarray:  # noqa: ANN401
    want = np.dtype(spec.dtype) if spec.dtype != "string" else np.dtype(object)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise InvalidInputError(
            f"input '{spec.name}' is not a rectangular array ({exc}): every row needs the same length",
            input_name=spec.name,
        ) from exc
    if array.dtype == want:
        return array
    if array.dtype.kind not in _SAFE_FROM.get(want.kind, ""):
        raise InvalidInputError(
            f"input '{spec.name}' expects {spec.dtype} values, got {_kind_name(array.dtype)}", input_name=spec.name
        )
    if want.kind in "iu" and array.dtype.kind in "iu":
        info = np.iinfo(want.type)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InvalidInputError(
                f"input '{spec.name}' has values outside {spec.dtype}'s range", input_name=spec.name
            )
    if want.kind == "f" and array.dtype.kind == "f":
        with np.errstate(over="ignore"):
            converted = array.astype(want)
        if not np.array_equal(np.isfinite(converted), np.isfinite(array)):
            raise InvalidInputError(
                f"input '{spec.name}' has values outside {spec.dtype}'s range", input_name=spec.name
            )
        return converted
    return array.astype(want)


def _kind_name(dtype: np.dtype[Any]) -> str:
    return {"U": "strings", "O": "mixed or non-numeric values", "b": "booleans"}.get(dtype.kind, str(dtype))


def _shape_hint(spec: TensorSpec, got: Sequence[int]) -> str:
    if spec.shape is not None and len(got) == len(spec.shape) - 1:
        return ": add the batch dimension"
    if spec.layout == "NHWC" and spec.shape is not None and len(got) == len(spec.shape) == _IMAGE_RANK:
        n, c, h, w = got
        if TensorSpec(spec.name, spec.dtype, spec.shape).fits((n, h, w, c)):
            return ": this model takes NHWC (channels last), send x.transpose(0, 2, 3, 1)"
    return ""


class InputCheck:
    """:func:`validate` with a fast path for requests that already fit, compiled once per model.

    Serving calls this on every request, and at batch 1 a small model runs in about 15 µs: the common case
    (a dict of NumPy arrays with the right names, dtypes and shapes) costs well under a microsecond here, and
    anything else goes through :func:`validate`, which converts or explains.
    """

    def __init__(self, specs: Sequence[TensorSpec], *, max_elements: int | None = None) -> None:
        """Precompute names, dtypes, ranks and fixed dimensions."""
        self.specs = tuple(specs)
        self.max_elements = max_elements
        self._names = frozenset(s.name for s in specs)
        self._plan = tuple(
            (
                s.name,
                np.dtype(object) if s.dtype == "string" else np.dtype(s.dtype),
                None if s.shape is None else len(s.shape),
                tuple((i, d) for i, d in enumerate(s.shape or ()) if isinstance(d, int)),
            )
            for s in specs
        )
        self._check_batch = len(specs) > 1 and all(s.batched for s in specs)

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The arrays to run, or :class:`InvalidInputError`."""
        if type(inputs) is not dict or inputs.keys() != self._names:
            return validate(inputs, self.specs, max_elements=self.max_elements)
        batch = None
        for name, dtype, ndim, fixed in self._plan:
            array = inputs[name]
            if type(array) is not np.ndarray or array.dtype != dtype or (ndim is not None and array.ndim != ndim):
                return validate(inputs, self.specs, max_elements=self.max_elements)
            shape = array.shape
            for i, d in fixed:
                if shape[i] != d:
                    return validate(inputs, self.specs, max_elements=self.max_elements)
            if array.size == 0 or (self.max_elements is not None and array.size > self.max_elements):
                return validate(inputs, self.specs, max_elements=self.max_elements)
            if self._check_batch:
                if batch is not None and shape[0] != batch:
                    return validate(inputs, self.specs, max_elements=self.max_elements)
                batch = shape[0]
        return inputs
