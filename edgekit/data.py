"""Calibration and evaluation data: read, checked against the model's inputs, batched.

Data comes as a NumPy ``.npz`` archive with one array per model input (named like the input)
and, for evaluation, a ``label`` array; or as a folder of images with a declared preprocessing
(:mod:`edgekit.images`); or, when there is nothing, as synthetic inputs made from the input
spec — flagged everywhere, since calibrating on noise is a guess.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from edgekit.graph_stats import TensorSpec

#: array names taken as labels rather than inputs
LABEL_KEYS = ("label", "labels", "y", "target")
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class Dataset:
    """Inputs (each with a leading sample axis, all of one length) and optional labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    synthetic: bool = False

    @property
    def size(self) -> int:
        """Number of samples."""
        return len(next(iter(self.inputs.values())))

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples."""
        labels = None if self.labels is None else self.labels[:n]
        return Dataset({k: v[:n] for k, v in self.inputs.items()}, labels, self.source, self.synthetic)

    def batches(self, size: int, *, exact: bool = False) -> list[dict[str, np.ndarray]]:
        """Feeds of at most ``size`` samples; with ``exact`` (a model that fixes its batch), of exactly ``size``.

        An exact last batch is filled up with samples from the start; callers cut outputs to :attr:`size`.
        """
        inputs = self.inputs
        if exact and self.size % size:
            pad = size - self.size % size
            inputs = {k: np.concatenate([v, np.resize(v, (pad, *v.shape[1:]))]) for k, v in inputs.items()}
        total = len(next(iter(inputs.values())))
        return [{k: v[i : i + size] for k, v in inputs.items()} for i in range(0, total, size)]


def load_npz(path: Path, specs: Sequence[TensorSpec], *, role: str = "calibration") -> Dataset:
    """Read an ``.npz`` archive and check it against the model inputs."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{role} file '{path}' does not exist: check the path", path=path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        msg = f"{role} file '{path}' is not a readable .npz archive ({exc}): save it with np.savez(path, input=array)"
        raise DataError(msg, path=path) from exc
    input_names = {s.name for s in specs}
    labels = next((arrays.pop(k) for k in LABEL_KEYS if k in arrays and k not in input_names), None)
    inputs = match_inputs(arrays, specs, source=path.name)
    dataset = Dataset(inputs, labels, str(path))
    if labels is not None and len(labels) != dataset.size:
        msg = f"{path.name} has {len(labels)} labels for {dataset.size} samples: give one label per sample"
        raise DataError(msg, path=path)
    return dataset


def match_inputs(
    arrays: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], *, source: str
) -> dict[str, np.ndarray]:
    """Pair arrays with model inputs by name (or the only array with the only input) and conform them."""
    names = [s.name for s in specs]
    if all(n in arrays for n in names):
        chosen = {s.name: arrays[s.name] for s in specs}
    elif len(specs) == 1 and len(arrays) == 1:
        chosen = {specs[0].name: next(iter(arrays.values()))}
    else:
        missing = [n for n in names if n not in arrays]
        msg = (
            f"{source} has arrays {sorted(arrays)} but the model needs {names} (missing {missing}): "
            "name each array after its model input"
        )
        raise DataError(msg)
    out = {s.name: conform(chosen[s.name], s, source=source) for s in specs}
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{source}: inputs have different sample counts {lengths}: give every input the same count")
    return out


def conform(array: np.ndarray, spec: TensorSpec, *, source: str) -> np.ndarray:
    """Check shape and element type against ``spec``; cast safe differences (float64 → float32)."""
    want = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype(np.float32)
    expects = f"input '{spec.name}' expects shape {spec.shape_text()} ({spec.dtype})"
    got = f"got {list(array.shape)} ({array.dtype}) in {source}"
    if array.dtype.kind not in "biuf":
        raise DataError(f"{expects}, {got}: store numbers")
    if want.kind in "iu" and array.dtype.kind == "f":
        raise DataError(f"{expects}, {got}: store integers, not floats")
    if spec.shape is not None:
        if array.ndim == len(spec.shape) - 1:
            raise DataError(f"{expects}, {got}: add the batch dimension (array[None] or np.stack)")
        if array.ndim != len(spec.shape):
            raise DataError(f"{expects}, {got}: reshape the array to the model's rank {len(spec.shape)}")
        for axis, (want_dim, have) in enumerate(zip(spec.shape[1:], array.shape[1:], strict=True), start=1):
            if isinstance(want_dim, int) and want_dim != have:
                raise DataError(f"{expects}, {got}: dimension {axis} must be {want_dim}")
    if len(array) == 0:
        raise DataError(f"{expects}, {got}: the array holds no samples")
    return np.ascontiguousarray(array, dtype=want)


def synthesize(
    specs: Sequence[TensorSpec],
    *,
    samples: int = SYNTHETIC_SAMPLES,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> Dataset:
    """Random inputs from the spec: standard normal floats, small non-negative integers.

    Symbolic dimensions other than the batch must be fixed through ``shapes`` (``--input-shape``).
    """
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    inputs = {}
    for spec in specs:
        dims = _concrete_shape(spec, shapes.get(spec.name), samples)
        dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype(np.float32)
        if dtype.kind == "f":
            inputs[spec.name] = rng.standard_normal(dims).astype(dtype)
        elif dtype.kind == "b":
            inputs[spec.name] = rng.integers(0, 2, dims).astype(dtype)
        else:
            inputs[spec.name] = rng.integers(0, 10, dims).astype(dtype)
    return Dataset(inputs, None, "synthetic", synthetic=True)


def _concrete_shape(spec: TensorSpec, override: Sequence[int] | None, samples: int) -> tuple[int, ...]:
    if override is not None:
        dims = list(override)
        if spec.shape is not None and len(dims) != len(spec.shape):
            msg = (
                f"--input-shape for '{spec.name}' has rank {len(dims)}, the model's is {len(spec.shape)}: "
                "give every dimension"
            )
            raise DataError(msg)
        return (samples, *dims[1:])
    if spec.shape is None:
        msg = (
            f"input '{spec.name}' has no known shape and there is no data: "
            f"pass --calib, or --input-shape {spec.name}=1,..."
        )
        raise DataError(msg)
    out = [samples]
    for dim in spec.shape[1:]:
        if not isinstance(dim, int) or dim <= 0:
            example = ",".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in spec.shape)
            msg = (
                f"input '{spec.name}' has a free dimension '{dim}' and there is no data to fix it: "
                f"pass --calib, or --input-shape {spec.name}={example.replace('?', 'N', 1)} with numbers"
            )
            raise DataError(msg)
        out.append(dim)
    return tuple(out)


def fixed_batch(specs: Sequence[TensorSpec]) -> int | None:
    """The batch size the model fixes on its inputs, or ``None`` when the batch axis is free."""
    fixed = {s.batch_dim for s in specs if isinstance(s.batch_dim, int) and s.batch_dim > 0}
    return fixed.pop() if len(fixed) == 1 else None


def batch_size_for(specs: Sequence[TensorSpec], wanted: int) -> int:
    """The batch the model accepts: its fixed batch dimension, or ``wanted`` when the axis is free."""
    return fixed_batch(specs) or wanted
