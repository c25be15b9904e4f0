"""Stateful models run as sequences: one call per step, each call's state outputs fed back as the next one's inputs.

A model with state inputs (an LSTM's ``h`` and ``c``, batch 1) is run by its device one step at a time and is
handed back its own state outputs (``hn``, ``cn``). Calibrating or scoring it one frame at a time from a zero
state measures a model nobody runs, so with sequence data (:func:`edgekit.data.load_sequences`):

- :func:`resolve_state` checks the ``--state`` pairs against the model, or finds them by name and shape;
- :func:`unroll` runs the FP32 model over the sequences; its per-step feeds, state included, become the rows
  of the :class:`~edgekit.data.Dataset` that calibration, timing and bundles read (so static INT8 is
  calibrated on the activations the model sees along real sequences);
- :class:`SequenceRunner` runs any model, the reference or a candidate, over the same sequences, each feeding
  back *its own* state; its outputs are the outputs that are not state, one row per step (``[S * T, ...]``), the
  shape :mod:`edgekit.measure.fidelity` compares. State outputs are fed back, not judged: their errors show
  in the later steps' outputs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from edgekit.data import Dataset, load_npz, load_sequences
from edgekit.errors import ConfigError, EngineError
from edgekit.graph_stats import graph_inputs, graph_outputs
from edgekit.measure.session import OrtRunner

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    import onnx

    from edgekit.data import Sequences
    from edgekit.graph_stats import TensorSpec
    from edgekit.passes.base import Progress

StatePairs = tuple[tuple[str, str], ...]


def resolve_state(model: onnx.ModelProto, given: StatePairs | None) -> StatePairs:
    """The ``(state input, state output)`` pairs: ``given`` checked against the model, or found (``None``)."""
    inputs, outputs = graph_inputs(model), graph_outputs(model)
    if given is None:
        return detect_state(inputs, outputs)
    in_specs, out_specs = {s.name: s for s in inputs}, {s.name: s for s in outputs}
    available = f"the model's inputs are {', '.join(in_specs)}; its outputs {', '.join(out_specs)}"
    for name, out in given:
        if name not in in_specs or out not in out_specs:
            missing = f"no input '{name}'" if name not in in_specs else f"no output '{out}'"
            raise ConfigError(f"--state {name}:{out}: the model has {missing} ({available})")
        want, have = in_specs[name], out_specs[out]
        if want.dtype != have.dtype or want.shape != have.shape:
            msg = (
                f"--state {name}:{out}: input '{name}' is {want.dtype} {want.shape_text()} but output '{out}' is "
                f"{have.dtype} {have.shape_text()}: pair each state input with the output of its shape"
            )
            raise ConfigError(msg)
    for side, names in (("input", [i for i, _ in given]), ("output", [o for _, o in given])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--state names the {side} '{twice[0]}' twice: pair each state input with one output")
    if len(given) >= len(in_specs):
        raise ConfigError(f"--state makes every input state ({available}): a step needs an input that is not state")
    return tuple(given)


def detect_state(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> StatePairs:
    """Inputs with an output of the same fixed shape and type named like their next value (``h`` → ``hn``).

    Names taken as an input's next value: the name with ``n``, ``_n``, ``out``, ``_out``, ``_new`` or ``_next``
    appended; with a word ``in`` made ``out`` (``state_in`` → ``state_out``); with a final ``0`` made ``n``
    (``h0`` → ``hn``). An input with no such output, or more than one, is not state; none is found when every
    input would be.
    """
    by_name = {s.name: s for s in outputs}
    pairs = []
    for spec in inputs:
        if spec.shape is None or not all(isinstance(d, int) and d > 0 for d in spec.shape):
            continue
        found = [
            n
            for n in _next_names(spec.name)
            if n in by_name and by_name[n].shape == spec.shape and by_name[n].dtype == spec.dtype
        ]
        if len(found) == 1:
            pairs.append((spec.name, found[0]))
    if len(pairs) >= len(inputs) or len({o for _, o in pairs}) != len(pairs):
        return ()
    return tuple(pairs)


def _next_names(name: str) -> list[str]:
    names = [name + s for s in ("n", "_n", "out", "_out", "_new", "_next")]
    swapped = re.sub(r"(?<![A-Za-z0-9])in(?![A-Za-z0-9])", "out", name)
    if swapped != name:
        names.append(swapped)
    if name.endswith("0"):
        names.append(name[:-1] + "n")
    return list(dict.fromkeys(names))


class SequenceRunner(OrtRunner):
    """A session that runs sequences, feeding its own state back; it reports (and times) the outputs not state."""

    def __init__(self, model_bytes: bytes, sequences: Sequences, *, threads: int, label: str = "model") -> None:
        """Create the session; :attr:`output_names` leaves out the state outputs (unless every output is state)."""
        super().__init__(model_bytes, threads=threads, label=label)
        self.sequences = sequences
        self.all_names = list(self.output_names)
        state_outputs = {out for _, out in sequences.state}
        self.output_names = [n for n in self.all_names if n not in state_outputs] or self.all_names

    def steps(
        self, progress: Progress | None = None, description: str = ""
    ) -> Iterator[tuple[dict[str, np.ndarray], list[np.ndarray]]]:
        """Each step's feeds (state included) and all its outputs, sequence after sequence."""
        seqs = self.sequences
        index = {n: i for i, n in enumerate(self.all_names)}
        order = list(range(seqs.count))
        for s in progress.track(order, description) if progress is not None else order:
            state = {name: seqs.initial[name][s] for name, _ in seqs.state}
            for t in range(seqs.length):
                feeds = {k: v[s, t] for k, v in seqs.steps.items()} | state
                outs = self._step(feeds)
                yield feeds, outs
                state = {name: outs[index[out]] for name, out in seqs.state}

    def _step(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self.session.run(self.all_names, feeds))
        except Exception as exc:  # ORT raises its own non-exported exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            msg = f"ONNX Runtime cannot run the {self.label} on a sequence step ({first}): check the state pairs"
            raise EngineError(msg, stage="run", reason=first) from exc

    def outputs(self, progress: Progress | None = None, description: str = "") -> list[np.ndarray]:
        """The reported outputs of every step, joined along the first axis: ``[S * T, ...]`` for batch 1."""
        kept = [self.all_names.index(n) for n in self.output_names]
        rows = [outs for _, outs in self.steps(progress, description)]
        return [np.concatenate([r[i] for r in rows]) for i in kept]


def unroll(
    sequences: Sequences, labels: np.ndarray | None, *, model_bytes: bytes, threads: int, source: str, notes: list[str]
) -> Dataset:
    """The sequences as one row per step, the state inputs holding what ``model_bytes`` (the FP32 model) fed back."""
    runner = SequenceRunner(model_bytes, sequences, threads=threads, label="original model")
    feeds = [f for f, _ in runner.steps()]
    inputs = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
    return Dataset(inputs, labels, source, notes=tuple(notes), sequences=sequences)


def load(
    path: Path,
    specs: Sequence[TensorSpec],
    *,
    role: str,
    state: StatePairs,
    detected: bool,
    model_bytes: bytes,
    threads: int,
) -> Dataset:
    """An ``.npz`` of sequences unrolled through the FP32 model when the model has ``state``; else of samples."""
    found = load_sequences(path, specs, state, role=role) if state else None
    if found is None:
        return load_npz(path, specs, role=role)
    sequences, labels, notes = found
    if detected:
        fed = ", ".join(f"{o} → {i}" for i, o in state)
        notes.append(
            f"{path.name}: {sequences.count} sequences of {sequences.length} steps, state fed back {fed} "
            "(found by name and shape; set with --state)"
        )
    return unroll(sequences, labels, model_bytes=model_bytes, threads=threads, source=str(path), notes=notes)
