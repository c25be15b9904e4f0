"""Calibration and evaluation data: read, checked against the model's inputs, batched.

Data comes as a NumPy ``.npz`` archive with one array per model input (named like the input)
and, for evaluation, a ``label`` array (:func:`load_npz` says what else it accepts); or as a folder of
images with a declared preprocessing (:mod:`edgekit.images`); or, when there is nothing, as synthetic
inputs made from the input spec — flagged everywhere, since calibrating on noise is a guess. A stateful model
(state outputs fed back as state inputs) may take sequences instead: :func:`load_sequences`.
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

#: array names taken as labels rather than inputs (unless the model has an input so named); nothing else is
#: guessed to be labels: an ``.npz`` with ``x`` and ``y`` is refused with the names to use
LABEL_KEYS = ("label", "labels")
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class Sequences:
    """A stateful model's data as sequences: each step one call of batch 1, its state outputs fed back.

    Run by :mod:`edgekit.measure.sequences`.
    """

    #: the inputs that are not state, ``[S, T, *input shape]``: S sequences of T steps
    steps: dict[str, np.ndarray]
    #: each state input at the start of each sequence, ``[S, *state shape]`` (zeros unless the file gives them)
    initial: dict[str, np.ndarray]
    #: ``(state input, state output)`` pairs: the output of one step is the input of the next
    state: tuple[tuple[str, str], ...]

    @property
    def count(self) -> int:
        """Number of sequences."""
        return len(next(iter(self.steps.values())))

    @property
    def length(self) -> int:
        """Steps per sequence."""
        return int(next(iter(self.steps.values())).shape[1])

    def head(self, count: int, length: int | None = None) -> Sequences:
        """The first ``count`` sequences, cut to their first ``length`` steps."""
        steps = {k: v[:count, :length] for k, v in self.steps.items()}
        return Sequences(steps, {k: v[:count] for k, v in self.initial.items()}, self.state)


@dataclass(frozen=True)
class Dataset:
    """Inputs (each with a leading sample axis, all of one length) and optional labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    synthetic: bool = False
    #: what reading the data assumed or left out (an array fed to an input of another name, arrays not used)
    notes: tuple[str, ...] = ()
    #: for a stateful model, the sequences ``inputs`` unroll (one row per step, state from the FP32 model's run)
    sequences: Sequences | None = None

    @property
    def size(self) -> int:
        """Number of samples."""
        return len(next(iter(self.inputs.values())))

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples; of sequences, whole ones, or the first ``n`` steps of the first one."""
        sequences = self.sequences
        if sequences is not None and n >= sequences.length:
            sequences, n = sequences.head(n // sequences.length), n // sequences.length * sequences.length
        elif sequences is not None:
            sequences = sequences.head(1, n)
        labels = None if self.labels is None else self.labels[:n]
        inputs = {k: v[:n] for k, v in self.inputs.items()}
        return Dataset(inputs, labels, self.source, self.synthetic, self.notes, sequences)

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
    """Read an ``.npz`` archive and check it against the model inputs.

    Arrays feed the inputs named like them; labels come only from an array named ``label`` (or ``labels``).
    A model with one input takes the file's only other array, with a note; anything else that does not match
    is refused with the arrays found and the names expected.
    """
    path = Path(path)
    arrays = _read_npz(path, role)
    input_names = {s.name for s in specs}
    label_key = next((k for k in LABEL_KEYS if k in arrays and k not in input_names), None)
    labels = None if label_key is None else arrays.pop(label_key)
    inputs, notes = match_inputs(arrays, specs, source=path.name)
    dataset = Dataset(inputs, labels, str(path), notes=tuple(notes))
    if labels is not None and (labels.ndim == 0 or len(labels) != dataset.size):
        shape = list(labels.shape)
        msg = (
            f"array '{label_key}' in {path.name} has shape {shape} for {dataset.size} samples: "
            f"give one label per sample, shape [{dataset.size}]"
        )
        raise DataError(msg, path=path)
    return dataset


def _read_npz(path: Path, role: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{role} file '{path}' does not exist: check the path", path=path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        msg = f"{role} file '{path}' is not a readable .npz archive ({exc}): save it with np.savez(path, input=array)"
        raise DataError(msg, path=path) from exc


def load_sequences(
    path: Path, specs: Sequence[TensorSpec], state: Sequence[tuple[str, str]], *, role: str = "calibration"
) -> tuple[Sequences, np.ndarray | None, list[str]] | None:
    """Read an ``.npz`` of sequences for a model whose ``state`` outputs feed back; ``None`` if it holds samples.

    Each input that is not state is an array ``[S, T, *input shape]`` (a step is one call of batch 1); an array
    named after a state input, ``[S, *state shape]``, starts each sequence (else zeros); ``label`` is ``[S, T]``.
    A file whose arrays have the inputs' own rank is one of samples (:func:`load_npz`), if it gives the state.
    Returns the sequences, the labels one per step (``[S * T]``) and notes.
    """
    path = Path(path)
    arrays = _read_npz(path, role)
    state_inputs = [i for i, _ in state]
    step_specs = [s for s in specs if s.name not in state_inputs]
    by_name = {s.name: s for s in specs}
    if not all(
        s.name in arrays and s.shape is not None and arrays[s.name].ndim == len(s.shape) + 2 for s in step_specs
    ):
        if all(n in arrays for n in by_name) or not all(s.name in arrays for s in step_specs):
            return None  # samples with their state given, or inputs missing: load_npz says what to do
        first = step_specs[0]
        shape = "?" if first.shape is None else ", ".join(str(d) for d in first.shape)
        msg = (
            f"{path.name} gives no value for the state the model feeds back ({', '.join(state_inputs)}): give "
            f"sequences, '{first.name}' of shape [S, T, {shape}] (S sequences of T steps), or every sample's state"
        )
        raise DataError(msg, path=path)
    seq_count, length = arrays[step_specs[0].name].shape[:2]
    steps = {}
    for spec in step_specs:
        array = arrays[spec.name]
        if array.shape[:2] != (seq_count, length) or array.shape[2] != 1:
            msg = (
                f"'{spec.name}' in {path.name} has shape {list(array.shape)}: sequence data is [S, T, 1, ...] "
                f"for every input, one call of batch 1 per step, with the same S={seq_count} and T={length}"
            )
            raise DataError(msg, path=path)
        rows = conform(array.reshape(seq_count * length, *array.shape[3:]), spec, source=path.name)
        steps[spec.name] = rows.reshape(array.shape)
    initial = {name: _initial_state(arrays.get(name), by_name[name], seq_count, path.name) for name in state_inputs}
    labels = arrays.get(LABEL_KEYS[0])
    if labels is not None and labels.shape[:2] != (seq_count, length):
        msg = f"'label' in {path.name} has shape {list(labels.shape)}: give one label per step, [{seq_count}, {length}]"
        raise DataError(msg, path=path)
    unused = sorted(set(arrays) - set(by_name) - {LABEL_KEYS[0]})
    notes = [f"{path.name}: {_listed('array', unused)} neither a model input nor 'label': not used"] if unused else []
    flat = None if labels is None else labels.reshape(seq_count * length, *labels.shape[2:])
    return Sequences(steps, initial, tuple(state)), flat, notes


def _initial_state(array: np.ndarray | None, spec: TensorSpec, count: int, source: str) -> np.ndarray:
    """The state each sequence starts from: ``array`` (``[S, *state shape]``) or zeros."""
    dims = spec.shape
    if dims is None or not all(isinstance(d, int) and d > 0 for d in dims) or dims[0] != 1:
        msg = (
            f"state input '{spec.name}' has shape {spec.shape_text()}: running sequences needs a fixed state "
            "shape with a leading 1 (batch 1 per step)"
        )
        raise DataError(msg)
    want = (count, *(d for d in dims if isinstance(d, int)))
    if array is None:
        return np.zeros(want, dtype=np.dtype(spec.dtype))
    if array.shape != want:
        shape = list(want)
        msg = f"'{spec.name}' in {source} has shape {list(array.shape)}: a start state per sequence is {shape}"
        raise DataError(msg)
    return np.ascontiguousarray(array, dtype=np.dtype(spec.dtype))


def match_inputs(
    arrays: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], *, source: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Pair arrays (labels already taken out) with model inputs and conform them; notes on what was assumed.

    By name; or, for a model with one input, the only array there is. Arrays left over are named in a note.
    """
    names = [s.name for s in specs]
    notes = []
    if all(n in arrays for n in names):
        chosen = {s.name: arrays[s.name] for s in specs}
        unused = [k for k in sorted(arrays) if k not in chosen]
        if unused:
            notes.append(
                f"{source}: {_listed('array', unused)} neither a model input nor '{LABEL_KEYS[0]}': not used "
                f"(labels go in an array named '{LABEL_KEYS[0]}')"
            )
    elif len(specs) == 1 and len(arrays) == 1:
        (key,) = arrays
        chosen = {names[0]: arrays[key]}
        notes.append(
            f"{source}: array '{key}' feeds the model's only input '{names[0]}' "
            f"(name the array '{names[0]}' to make that explicit)"
        )
    else:
        missing = [n for n in names if n not in arrays]
        msg = (
            f"{source} has arrays {sorted(arrays)} but the model's inputs are {names} (missing {missing}): "
            f"name each array after its model input, and labels '{LABEL_KEYS[0]}': {_savez_example(names)}"
        )
        raise DataError(msg)
    out = {s.name: conform(chosen[s.name], s, source=source) for s in specs}
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{source}: inputs have different sample counts {lengths}: give every input the same count")
    return out, notes


def _savez_example(names: Sequence[str]) -> str:
    """``np.savez(path, input=x, label=y)`` for these input names."""
    values = ["x"] if len(names) == 1 else [f"x{i}" for i in range(len(names))]
    pairs = [f"{n}={v}" if n.isidentifier() else f"**{{{n!r}: {v}}}" for n, v in zip(names, values, strict=True)]
    return f"np.savez(path, {', '.join([*pairs, f'{LABEL_KEYS[0]}=y'])})"


def _listed(noun: str, names: Sequence[str]) -> str:
    """``array 'y' is`` or ``arrays 'a', 'b' are``."""
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"{noun} {quoted} is" if len(names) == 1 else f"{noun}s {quoted} are"


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
