"""Measuring models one after another on the same inputs, threads and latency budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.data import batch_size_for, fixed_batch
from edgekit.measure import fidelity, latency
from edgekit.measure.session import OrtRunner
from edgekit.measure.size import Size
from edgekit.report import ModelMeasurement

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from edgekit.data import Dataset
    from edgekit.graph_stats import TensorSpec
    from edgekit.passes.base import Progress
    from edgekit.pipeline import PassResult

#: samples per inference call when evaluating a model with a free batch axis
EVAL_BATCH = 64


class Meter:
    """Runs models on the probe data (outputs, fidelity, accuracy) and times them in turns."""

    def __init__(
        self,
        probe: Dataset,
        specs: Sequence[TensorSpec],
        *,
        threads: int,
        batch: int,
        budget: latency.LatencyBudget,
        progress: Progress,
        hints: fidelity.OutputHints | None = None,
    ) -> None:
        """Batch the probe data once; latency is timed at batch 1 and ``batch`` (or the model's fixed batch).

        ``hints`` is what the run knows about the outputs (a classifier's declared labels): how they are judged.
        """
        self.probe = probe
        self.hints = hints or fidelity.OutputHints()
        self.threads = threads
        self.progress = progress
        self.budget = budget
        fixed = fixed_batch(specs)
        self.fixed_batch = fixed is not None
        self.eval_batches = probe.batches(batch_size_for(specs, EVAL_BATCH), exact=fixed is not None)
        sizes = [fixed] if fixed else sorted({1, batch})
        first = self.eval_batches[0]
        self.latency_feeds = [latency.tile_feeds(first, b) for b in sizes]

    def outputs(self, name: str, data: bytes) -> tuple[OrtRunner, list[np.ndarray]]:
        """A session for the model and its outputs over the probe samples."""
        if self.probe.sequences is not None:  # a stateful model: each model feeds back its own state, step by step
            from edgekit.measure.sequences import SequenceRunner

            stateful = SequenceRunner(data, self.probe.sequences, threads=self.threads, label=f"{name} model")
            return stateful, stateful.outputs(self.progress, f"evaluating {name}")
        runner = OrtRunner(data, threads=self.threads, label=f"{name} model")
        batches = list(self.progress.track(self.eval_batches, f"evaluating {name}"))
        return runner, [o[: self.probe.size] for o in runner.run_batches(batches)]

    def sample_feeds(self, samples: int) -> list[dict[str, np.ndarray]]:
        """The first evaluation batch, cut to ``samples`` when the model's batch axis is free."""
        first = self.eval_batches[0]
        return [first if self.fixed_batch else {k: v[:samples] for k, v in first.items()}]

    def measure_all(self, models: list[tuple[str, bytes, list[PassResult]]]) -> list[ModelMeasurement]:
        """Outputs, fidelity and accuracy model by model (the first is the reference); then latency."""
        runners = []
        measured = []
        reference: list[np.ndarray] = []
        kinds: list[fidelity.OutputKind] = []
        for name, data, results in models:
            runner, outputs = self.outputs(name, data)
            m = ModelMeasurement(name, Size.of(data), [], passes=results)
            if self.probe.labels is not None:
                m.accuracy = fidelity.accuracy(outputs, self.probe.labels)
            if not reference:
                reference = outputs
                kinds = fidelity.judge(runner.output_names, reference, self.hints)
            else:
                m.fidelity = fidelity.compare_all(runner.output_names, reference, outputs, kinds)
            runners.append(runner)
            measured.append(m)
        self.time_all(runners, measured)
        return measured

    def time_all(self, runners: Sequence[OrtRunner], measured: Sequence[ModelMeasurement]) -> None:
        """Time every model at every batch size, the models taking turns; fills ``latency`` in."""
        for feeds in self.progress.track(self.latency_feeds, "timing"):
            for m, lat in zip(measured, latency.measure_interleaved(runners, feeds, self.budget), strict=True):
                m.latency.append(lat)
