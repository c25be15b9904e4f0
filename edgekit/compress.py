"""``edgekit compress``: prepare the model, produce each variant, measure everything, write the result.

The flow, each step a plain function call::

    load → Validate → Cleanup ─┬─ int8-static ─┐
                               ├─ int8-dynamic ├─ measure (size, latency, fidelity, accuracy) → write
                               ├─ fp16         │
                               └─ prune ───────┘

With a budget (auto mode, the CLI's default) the variants are candidates instead: each is scored,
INT8 ones that miss keep their most sensitive nodes in float, and one is chosen
(:mod:`edgekit.auto`); only it is written.

With ``targets`` (``--to``) holding ``tflite``, the cleaned-up graph is also converted to ``.tflite``
variants, measured in LiteRT and chosen the same way (:mod:`edgekit.compress_tflite`); with ``tflite``
alone, no ONNX variant is made. The first target's result is bundled (:mod:`edgekit.compress_output`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit import __version__, auto, compress_output, compress_target, compress_tflite, importers, passes
from edgekit.cpu import CpuInfo, host_cpu
from edgekit.data import Dataset, batch_size_for, fixed_batch, load_npz, synthesize
from edgekit.errors import ConfigError
from edgekit.graph_stats import graph_inputs
from edgekit.measure import latency
from edgekit.measure.meter import Meter
from edgekit.measure.size import Size
from edgekit.model_io import LoadedModel, load_model, model_bytes
from edgekit.passes.base import PassContext, Progress, SilentProgress
from edgekit.pipeline import Pipeline
from edgekit.report import Report
from edgekit.tflite.config import IO_LAYOUTS, IoLayout

if TYPE_CHECKING:
    from collections.abc import Sequence

    import onnx

    from edgekit.auto.result import AutoResult
    from edgekit.bundle.pack import BundleOptions
    from edgekit.compress_tflite import TFLiteMade
    from edgekit.graph_stats import TensorSpec
    from edgekit.images import Preprocess
    from edgekit.passes.base import PassConfig
    from edgekit.pipeline import PassResult
    from edgekit.report import ModelMeasurement, TFLiteResult
    from edgekit.tflite import TFLiteModel
    from edgekit_runtime.targets import Target

MODEL_FILE = compress_output.MODEL_FILE
REPORT_FILE = compress_output.REPORT_FILE
_NEEDS_CALIBRATION = {passes.QuantizeStatic.name}
#: what ``--to`` may name
TARGETS = ("onnx", "tflite")


@dataclass(frozen=True)
class CompressOptions:
    """Everything ``edgekit compress`` can be told; the CLI fills it in, the report echoes it."""

    #: variants to produce, by pass name; the first is the result written as ``model.onnx``. With
    #: ``auto`` set they are the candidates instead (none: :func:`edgekit.auto.auto_candidates`)
    modes: tuple[str, ...] = (passes.QuantizeStatic.name,)
    #: search under an accuracy budget and choose the result (``None``: make every mode, first is the result)
    auto: auto.AutoOptions | None = None
    cleanup: passes.CleanupConfig = field(default_factory=passes.CleanupConfig)
    static: passes.QuantizeStaticConfig = field(default_factory=passes.QuantizeStaticConfig)
    dynamic: passes.QuantizeDynamicConfig = field(default_factory=passes.QuantizeDynamicConfig)
    fp16: passes.Fp16Config = field(default_factory=passes.Fp16Config)
    prune: passes.PruneConfig = field(default_factory=passes.PruneConfig)
    #: ``.npz`` archive (or image folder) of representative inputs
    calib: Path | None = None
    #: how images in a calibration folder become inputs
    preprocess: Preprocess | None = None
    #: ``.npz`` archive of inputs, with ``label`` for accuracy
    eval: Path | None = None
    #: shapes for synthetic inputs where the model leaves dimensions free
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: inference threads for latency (the target's core count); ``None``: this CPU's cores, at most 4
    threads: int | None = None
    #: the larger batch latency is measured at (besides batch 1)
    batch: int = 32
    #: keep evaluation to this many samples (``None``: all)
    max_eval_samples: int | None = None
    latency_budget: latency.LatencyBudget = field(default_factory=latency.LatencyBudget)
    #: also write a bundle (``NAME-VERSION.edgebundle``) of the result; ``None``: model and report only
    bundle: BundleOptions | None = None
    #: what to make (``--to``): ``onnx``, ``tflite`` or both; the first one's result is the one bundled
    targets: tuple[str, ...] = ("onnx",)
    #: the ``.tflite`` variants' image inputs and outputs: ``channels-last`` (NHWC) or ``onnx`` (as in the model)
    tflite_layout: IoLayout = "channels-last"
    #: the board's profile (``--target``): latency threads, ``reduce_range`` where not set, modes it avoids
    target: Target | None = None

    def pass_config(self, mode: str) -> PassConfig:
        """The config the pass for ``mode`` runs with."""
        configs: dict[str, PassConfig] = {
            passes.QuantizeStatic.name: self.static,
            passes.QuantizeDynamic.name: self.dynamic,
            passes.ConvertFp16.name: self.fp16,
            passes.PruneMagnitude.name: self.prune,
        }
        return configs[mode]

    def check(self) -> None:
        """Refuse impossible options before any work."""
        if self.auto is not None:
            self.auto.check()
        if not self.modes and self.auto is None:
            raise ConfigError("no --mode given: choose from " + ", ".join(passes.VARIANT_PASSES))
        for mode in self.modes:
            if mode not in passes.VARIANT_PASSES:
                raise ConfigError(f"unknown mode '{mode}': choose from {', '.join(passes.VARIANT_PASSES)}")
        if len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"--mode lists a mode twice ({','.join(self.modes)}): list each once")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads {self.threads} is not a thread count: use 1 or more")
        if self.batch < 1:
            raise ConfigError(f"--batch {self.batch} is not a batch size: use 1 or more")
        if self.bundle is not None:
            self.bundle.check()
        self._check_targets()

    def _check_targets(self) -> None:
        if not self.targets or set(self.targets) - set(TARGETS) or len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"--to '{','.join(self.targets)}' is not a list of targets: name onnx, tflite or both")
        if "tflite" in self.targets:
            from edgekit.measure.litert import require_litert

            if self.tflite_layout not in IO_LAYOUTS:
                raise ConfigError(
                    f"TFLite layout '{self.tflite_layout}' is unknown: choose from {', '.join(IO_LAYOUTS)}"
                )
            require_litert("--to tflite")


def compress(
    model_path: Path,
    out_dir: Path,
    options: CompressOptions | None = None,
    *,
    progress: Progress | None = None,
    cpu: CpuInfo | None = None,
) -> Report:
    """Compress ``model_path`` into ``out_dir`` (``model.onnx``/``model.tflite`` + ``report.json``); return the report.

    ``model_path`` is anything :mod:`edgekit.importers` reads except ``.tflite`` (packed as is, never
    compressed). With ``options.bundle`` the result is also bundled. Nothing is written to ``out_dir``
    unless every step succeeds. With ``options.auto`` the report's ``auto.verdict`` says whether the
    budget was met; the best model found is written either way.
    """
    options = compress_target.for_target(options or CompressOptions())
    options.check()
    # constructing a pass validates its config: do it before any work
    candidates = _candidates(options, has_calibration=options.calib is not None) if "onnx" in options.targets else []
    tflite_plan = compress_tflite.plan_for(options)
    progress = progress or SilentProgress()
    cpu = cpu or host_cpu()
    threads = compress_target.threads(options, cpu)
    _check_out_dir(out_dir)

    loaded, imported = _load(str(model_path), options)
    specs = graph_inputs(loaded.model)
    calib, evaluation = _load_data(options, specs)
    needs_calib = any(c.pass_name in _NEEDS_CALIBRATION for c in candidates)
    needs_calib = needs_calib or (tflite_plan is not None and "int8" in tflite_plan.variants)
    if needs_calib and calib is None:
        calib = synthesize(specs, shapes=dict(options.input_shapes))
    probe = evaluation or calib or synthesize(specs, shapes=dict(options.input_shapes))
    if options.max_eval_samples:
        probe = probe.head(options.max_eval_samples)

    with tempfile.TemporaryDirectory(prefix="edgekit-") as tmp:
        work = Path(tmp)
        exact = fixed_batch(specs) is not None
        ctx = PassContext(
            workdir=work,
            cpu=cpu,
            calibration=calib.batches(batch_size_for(specs, 16), exact=exact) if calib is not None else None,
            calibration_synthetic=bool(calib and calib.synthetic),
            progress=progress,
        )
        prep = Pipeline([passes.create(passes.Validate.name), passes.create(passes.Cleanup.name, options.cleanup)])
        prepared, prep_results = prep.run(loaded.model, ctx)
        meter = Meter(
            probe, specs, threads=threads, batch=options.batch, budget=options.latency_budget, progress=progress
        )
        made = _make(candidates, prepared, loaded, ctx, meter, probe, options)
        if tflite_plan is not None:
            made.add_tflite(*compress_tflite.run_target(tflite_plan, prepared, loaded, ctx, meter, probe, options))
        report = Report(
            edgekit_version=__version__,
            source=str(model_path),
            cpu=cpu.describe(),
            threads=threads,
            data=_data_notes(calib, evaluation, probe, options.preprocess),
            preparation=prep_results,
            original=made.original,
            variants=made.variants,
            chosen=made.result(options.targets),
            warnings=[
                *_warnings(calib, prep_results, made.variants, probe),
                *made.warnings,
                *compress_target.on_host(options, cpu, threads),
            ],
            auto=made.auto,
            imported=None if imported is None else {"kind": imported.kind, "notes": list(imported.notes)},
            targets=options.targets,
            tflite=made.tflite,
            target=compress_target.note(options, threads),
        )
        stage = work / "out"
        stage.mkdir()
        compress_output.stage_models(stage, report, made.models, made.chosen or None, made.tflite_models)
        if options.bundle is not None:
            datasets = [d for d in (evaluation, calib) if d is not None]
            result = made.tflite_models.get(report.chosen) or made.models[report.chosen]
            compress_output.bundle(
                stage,
                report,
                result,
                loaded,
                imported,
                options.bundle,
                datasets,
                options.preprocess,
                options.input_shapes,
            )
        else:
            report.files.append(REPORT_FILE)
        compress_output.write(out_dir, stage, report)
    return report


def _load(source: str, options: CompressOptions) -> tuple[LoadedModel, importers.Imported | None]:
    """An ONNX file as it is on disk, or another source through its importer."""
    if importers.detect(source) == "onnx":
        return load_model(Path(source)), None
    imported = importers.import_model(source, importers.ImportOptions(input_shapes=options.input_shapes))
    return LoadedModel(imported.require_onnx(), Path(source.split(":", 1)[0]), ()), imported


def _candidates(options: CompressOptions, *, has_calibration: bool) -> list[auto.Candidate]:
    """The modes asked for, each with its config (checked now); in auto mode with none asked, the default set."""
    if options.auto is not None and not options.modes:
        found = auto.auto_candidates(
            fp16=options.fp16, dynamic=options.dynamic, static=options.static, has_calibration=has_calibration
        )
        found = compress_target.searched(options, found)
    else:
        found = [auto.Candidate(m, m, options.pass_config(m)) for m in options.modes]
    for c in found:
        passes.create(c.pass_name, c.config)
    if options.auto is not None:  # auto mode pre-processes once (edgekit.auto.flow): trials skip it
        found = [
            auto.Candidate(c.name, c.pass_name, dataclasses.replace(c.config, preprocess=False))  # type: ignore[type-var]
            if c.pass_name == passes.QuantizeStatic.name
            else c
            for c in found
        ]
    return found


@dataclass
class _Made:
    """The measured models of one run, the result's name and the models to write."""

    original: ModelMeasurement
    variants: list[ModelMeasurement]
    chosen: str
    models: dict[str, onnx.ModelProto]
    auto: AutoResult | None = None
    warnings: list[str] = field(default_factory=list)
    tflite: TFLiteResult | None = None
    tflite_models: dict[str, TFLiteModel] = field(default_factory=dict)

    def add_tflite(self, made: TFLiteMade | None, result: TFLiteResult) -> None:
        """The TFLite target's variants (measured, and written when one was chosen) and result."""
        self.tflite = result
        if made is not None:
            self.variants += made.measured  # their pass warnings join the report's with the ONNX variants'
            self.tflite_models = made.written

    def result(self, targets: Sequence[str]) -> str:
        """The first target's result; the next one's when the first has none (a TFLite conversion that failed)."""
        results = {"onnx": self.chosen, "tflite": self.tflite.chosen if self.tflite is not None else None}
        return next(r for t in targets if (r := results[t]))


def _make(  # noqa: PLR0917  (compress's state, passed on)
    candidates: list[auto.Candidate],
    prepared: onnx.ModelProto,
    loaded: LoadedModel,
    ctx: PassContext,
    meter: Meter,
    probe: Dataset,
    options: CompressOptions,
) -> _Made:
    """The ONNX variants (every mode, or the budgeted search); with ``--to tflite`` alone, the original only."""
    if "onnx" not in options.targets:
        original = meter.measure_all([("original", model_bytes(loaded.model), [])])[0]
        original.size = Size(loaded.file_bytes, original.size.zipped)
        return _Made(original, [], "", {})
    if options.auto is None:
        return _make_all(candidates, prepared, loaded, ctx, meter)
    return _search(candidates, prepared, loaded, ctx, meter, probe, options.auto)


def _make_all(
    candidates: list[auto.Candidate], prepared: onnx.ModelProto, loaded: LoadedModel, ctx: PassContext, meter: Meter
) -> _Made:
    """Every mode asked for, measured against the original; the first is the result."""
    models: dict[str, onnx.ModelProto] = {}
    results: dict[str, list[PassResult]] = {}
    for c in candidates:
        models[c.name], results[c.name] = Pipeline([passes.create(c.pass_name, c.config)]).run(prepared, ctx)
    original, *variants = meter.measure_all(
        [("original", model_bytes(loaded.model), [])]
        + [(c.name, model_bytes(models[c.name]), results[c.name]) for c in candidates]
    )
    original.size = Size(loaded.file_bytes, original.size.zipped)
    return _Made(original, variants, candidates[0].name, models)


def _search(  # noqa: PLR0917  (compress's state, passed on)
    candidates: list[auto.Candidate],
    prepared: onnx.ModelProto,
    loaded: LoadedModel,
    ctx: PassContext,
    meter: Meter,
    probe: Dataset,
    options: auto.AutoOptions,
) -> _Made:
    """Auto mode: the chosen model only is written."""
    from edgekit.auto.flow import run_auto

    outcome = run_auto(
        original=loaded, prepared=prepared, candidates=candidates, ctx=ctx, meter=meter, probe=probe, options=options
    )
    models = {outcome.chosen: outcome.model}
    return _Made(outcome.original, outcome.measured, outcome.chosen, models, outcome.result, outcome.warnings)


def _load_data(options: CompressOptions, specs: Sequence[TensorSpec]) -> tuple[Dataset | None, Dataset | None]:
    calib = evaluation = None
    if options.calib is not None:
        if options.calib.is_dir():
            from edgekit.images import load_folder  # needs Pillow, an extra

            calib = load_folder(options.calib, specs, options.preprocess)
        else:
            calib = load_npz(options.calib, specs, role="calibration")
    if options.eval is not None:
        evaluation = load_npz(options.eval, specs, role="evaluation")
    return calib, evaluation


def _data_notes(
    calib: Dataset | None, evaluation: Dataset | None, probe: Dataset, pre: Preprocess | None
) -> dict[str, object]:
    return {
        "preprocess": None if pre is None else pre.to_json(),
        "calibration": None
        if calib is None
        else {"source": calib.source, "samples": calib.size, "synthetic": calib.synthetic},
        "evaluation": None if evaluation is None else {"source": evaluation.source, "samples": evaluation.size},
        "fidelity_inputs": {"source": probe.source, "samples": probe.size, "synthetic": probe.synthetic},
    }


def _warnings(
    calib: Dataset | None, prep: list[PassResult], variants: list[ModelMeasurement], probe: Dataset
) -> list[str]:
    out = []
    if probe.synthetic:
        out.append(
            "FIDELITY WAS MEASURED ON SYNTHETIC NOISE: pass --eval or --calib with real inputs to judge the model"
        )
    if calib is not None and calib.synthetic:
        out.append(
            "STATIC INT8 WAS CALIBRATED ON SYNTHETIC NOISE: activation ranges are a guess and accuracy may be far "
            "off; pass --calib with real inputs"
        )
    out += [w for p in prep for w in p.warnings]
    out += [
        f"{v.name}: {w}" for v in variants for w in v.warnings if not (calib and calib.synthetic and "synthetic" in w)
    ]
    return out


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output '{out_dir}' exists and is a file: pass a folder with -o")
