"""The state of one ``edgekit compress`` run, carried as one object by every step that needs it.

:func:`open_run` loads the model and the data, prepares the graph once (``validate → cleanup``) in a
scratch folder, and sets up the :class:`~edgekit.measure.meter.Meter` that measures every model on the same
inputs and threads. The outputs (:mod:`.onnx_output`, :mod:`.tflite_output`), the report and the writer
(:mod:`.write`) read what they need from the :class:`CompressRun` instead of having it passed by hand.
"""

from __future__ import annotations

import functools
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit import importers, passes
from edgekit.compress import target
from edgekit.data import Dataset, batch_size_for, fixed_batch, synthesize
from edgekit.graph_stats import graph_inputs
from edgekit.measure import sequences
from edgekit.measure.fidelity import OutputHints
from edgekit.measure.meter import Meter
from edgekit.measure.size import Size
from edgekit.model_io import LoadedModel, load_model, model_bytes
from edgekit.passes.base import PassContext
from edgekit.pipeline import Pipeline

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import onnx

    from edgekit.compress.options import CompressOptions
    from edgekit.graph_stats import TensorSpec
    from edgekit.passes.base import Progress
    from edgekit.pipeline import PassResult
    from edgekit.report import ModelMeasurement
    from edgekit_runtime.cpu import CpuInfo


@dataclass(frozen=True)
class CompressRun:
    """What a compress run has loaded and set up, for its outputs, its report and its writer."""

    options: CompressOptions
    #: the model as the user named it (the report's ``source``)
    source: Path
    cpu: CpuInfo
    #: inference threads for latency (:func:`edgekit.compress.target.threads`)
    threads: int
    loaded: LoadedModel
    #: how a model that is not ONNX was imported (``None``: an ONNX file)
    imported: importers.Imported | None
    #: calibration data: the user's, synthesized when a variant needs some and none was given, or ``None``
    calib: Dataset | None
    evaluation: Dataset | None
    #: the samples every model's outputs are compared on
    probe: Dataset
    #: the passes' context: the scratch folder, the CPU, the calibration batches
    ctx: PassContext
    #: the model after ``validate → cleanup``, which every variant starts from
    prepared: onnx.ModelProto
    #: what ``validate`` and ``cleanup`` did
    preparation: list[PassResult]
    meter: Meter

    @property
    def workdir(self) -> Path:
        """The run's scratch folder, removed when the run closes."""
        return self.ctx.workdir

    @property
    def datasets(self) -> list[Dataset]:
        """The data a bundle of the result is given: evaluation first, then calibration."""
        return [d for d in (self.evaluation, self.calib) if d is not None]

    def measure_with_original(
        self, variants: list[tuple[str, bytes, list[PassResult]]]
    ) -> tuple[ModelMeasurement, list[ModelMeasurement]]:
        """The original and ``variants`` measured together (timing takes turns); the original's size is on disk."""
        original, *measured = self.meter.measure_all([("original", model_bytes(self.loaded.model), []), *variants])
        original.size = Size(self.loaded.file_bytes, original.size.zipped)
        return original, measured


@contextmanager
def open_run(
    source: Path, options: CompressOptions, *, needs_calibration: bool, progress: Progress, cpu: CpuInfo
) -> Iterator[CompressRun]:
    """Load, prepare and set up a run of ``options`` on ``source``; its scratch folder goes when it closes."""
    threads = target.threads(options, cpu)
    loaded, imported = _load(str(source), options)
    specs = graph_inputs(loaded.model)
    calib, evaluation = _load_data(options, specs, loaded, threads)
    if needs_calibration and calib is None:
        calib = synthesize(specs, shapes=dict(options.input_shapes))
    probe = evaluation or calib or synthesize(specs, shapes=dict(options.input_shapes))
    if options.max_eval_samples:
        probe = probe.head(options.max_eval_samples)

    with tempfile.TemporaryDirectory(prefix="edgekit-") as tmp:
        exact = fixed_batch(specs) is not None
        ctx = PassContext(
            workdir=Path(tmp),
            cpu=cpu,
            calibration=calib.batches(batch_size_for(specs, 16), exact=exact) if calib is not None else None,
            calibration_synthetic=bool(calib and calib.synthetic),
            progress=progress,
        )
        prep = Pipeline([passes.create(passes.Validate.name), passes.create(passes.Cleanup.name, options.cleanup)])
        prepared, preparation = prep.run(loaded.model, ctx)
        declared = (options.bundle.labels if options.bundle else None) or (imported.labels if imported else None)
        meter = Meter(
            probe,
            specs,
            threads=threads,
            batch=options.batch,
            budget=options.latency_budget,
            progress=progress,
            hints=OutputHints(classes=len(declared) if declared else None),
        )
        yield CompressRun(
            options=options,
            source=source,
            cpu=cpu,
            threads=threads,
            loaded=loaded,
            imported=imported,
            calib=calib,
            evaluation=evaluation,
            probe=probe,
            ctx=ctx,
            prepared=prepared,
            preparation=preparation,
            meter=meter,
        )


def _load(source: str, options: CompressOptions) -> tuple[LoadedModel, importers.Imported | None]:
    """An ONNX file as it is on disk, or another source through its importer."""
    if importers.detect(source) == "onnx":
        return load_model(Path(source)), None
    imported = importers.import_model(source, importers.ImportOptions(input_shapes=options.input_shapes))
    return LoadedModel(imported.require_onnx(), Path(source.split(":", 1)[0]), ()), imported


def _load_data(
    options: CompressOptions, specs: Sequence[TensorSpec], loaded: LoadedModel, threads: int
) -> tuple[Dataset | None, Dataset | None]:
    """The ``.npz`` files (of sequences, for a model that feeds back state: :mod:`edgekit.measure.sequences`)."""
    state = sequences.resolve_state(loaded.model, options.state)
    read = functools.partial(
        sequences.load,
        specs=specs,
        state=state,
        detected=options.state is None,
        model_bytes=model_bytes(loaded.model) if state else b"",
        threads=threads,
    )
    calib = evaluation = None
    if options.calib is not None:
        if options.calib.is_dir():
            from edgekit.images import load_folder  # needs Pillow, an extra

            calib = load_folder(options.calib, specs, options.preprocess)
        else:
            calib = read(options.calib, role="calibration")
    if options.eval is not None:
        evaluation = read(options.eval, role="evaluation")
    return calib, evaluation
