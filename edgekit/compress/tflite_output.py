"""The TFLite output of a compress run (``--to tflite``): ``.tflite`` variants, measured and chosen like the ONNX ones.

*Make*: the cleaned-up graph is converted by :mod:`edgekit.tflite` into up to three variants:
``tflite-fp32`` (always: the yardstick), ``tflite-fp16`` and ``tflite-int8``, whose activation scales
come from the static INT8 pass run on the same calibration batches (per channel, int8 activations, the
user's calibration method). *Measure*: each is run in LiteRT through the runtime's own backend (XNNPACK,
one thread, batch 1): outputs on the same probe samples as the ONNX models, compared with the original's
(fidelity, accuracy), then timed, the TFLite models taking turns. *Choose*: see below.

Which variants: in auto mode the counterparts of the candidates (``fp16`` → ``tflite-fp16``,
``int8-static`` → ``tflite-int8``, the latter only with real calibration data when no ``--mode`` is
given), and the result is chosen under the same budget and rule as the ONNX one, with speeds relative
to ``tflite-fp32``. With ``--mode`` and no budget, the counterparts of the listed modes are made and
the first listed mode that has one gives the result (``tflite-fp32`` when none has).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from edgekit import passes
from edgekit.auto.candidates import choose
from edgekit.auto.metrics import choose_metric
from edgekit.auto.result import AutoResult, Trial, Verdict
from edgekit.compress.output import Made
from edgekit.errors import ConfigError, ModelError
from edgekit.graph_stats import graph_inputs
from edgekit.measure import fidelity, latency
from edgekit.measure.litert import LiteRtRunner
from edgekit.measure.size import Size
from edgekit.model_io import model_bytes
from edgekit.pipeline import GraphFacts, PassResult, Pipeline
from edgekit.report import ModelMeasurement, TFLiteResult
from edgekit.tflite import TFLiteConfig, TFLiteModel, convert
from edgekit.tflite.flatbuffer import constant_stats

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import onnx

    from edgekit.auto.search import AutoOptions
    from edgekit.compress.options import CompressOptions
    from edgekit.compress.run import CompressRun
    from edgekit.data import Dataset
    from edgekit.passes.base import PassContext
    from edgekit.tflite.config import Variant

PREFIX = "tflite-"
FP32 = f"{PREFIX}fp32"
#: the TFLite variant each ONNX mode stands for; modes missing here have none
COUNTERPARTS: dict[str, Variant] = {passes.ConvertFp16.name: "fp16", passes.QuantizeStatic.name: "int8"}
#: LiteRT is timed as a device runs it: one thread, batch 1 (with ``--target``, the target's threads)
THREADS = 1


@dataclass(frozen=True)
class Plan:
    """The TFLite variants to make, and the result when it is not chosen by a budget."""

    variants: tuple[Variant, ...]
    #: the result (``None``: chosen under the budget)
    result: Variant | None


def plan(modes: Sequence[str], *, auto: bool, has_real_calibration: bool, only_target: bool) -> Plan:
    """The variants ``modes`` (``--mode``, possibly empty in auto mode) ask for; see the module docstring."""
    missing = [m for m in modes if m not in COUNTERPARTS]
    if missing and only_target:
        msg = (
            f"--mode {','.join(missing)} has no TFLite variant: with --to tflite use --mode fp16 or int8-static "
            "(tflite-fp32 is always made), or add onnx to --to"
        )
        raise ConfigError(msg)
    if auto and not modes:
        wanted: list[Variant] = ["fp16", "int8"] if has_real_calibration else ["fp16"]
    else:
        wanted = [COUNTERPARTS[m] for m in modes if m in COUNTERPARTS]
    variants: tuple[Variant, ...] = ("fp32", *dict.fromkeys(v for v in wanted if v != "fp32"))
    result = None if auto else (wanted[0] if wanted else "fp32")
    return Plan(variants, result)


@dataclass(frozen=True)
class Reference:
    """The original model's outputs on the probe samples, which every variant is compared with."""

    names: list[str]
    outputs: list[np.ndarray]
    probe: Dataset


@dataclass(frozen=True)
class TFLiteOutput:
    """The TFLite variants of a run, from its plan (checked when planned, before any work)."""

    target: ClassVar[str] = "tflite"
    plan: Plan

    @classmethod
    def for_options(cls, options: CompressOptions) -> TFLiteOutput:
        """The TFLite variants ``options`` ask for; a ``--mode`` with no TFLite variant raises here."""
        return cls(
            plan(
                options.modes,
                auto=options.auto is not None,
                has_real_calibration=options.calib is not None,
                only_target=options.targets == ("tflite",),
            )
        )

    @property
    def needs_calibration(self) -> bool:
        """``tflite-int8`` takes its activation scales from calibration batches."""
        return "int8" in self.plan.variants

    def make(self, run: CompressRun) -> Made[TFLiteModel]:
        """Convert, measure and choose; with other targets too, a model LiteRT cannot take is reported.

        With ``--to tflite`` alone its error is raised (nothing is written); with ``--to onnx,tflite`` it
        goes into the report (:func:`report_entry`) and the ONNX results are written.
        """
        runner, outputs = run.meter.outputs("original", model_bytes(run.loaded.model))
        reference = Reference(runner.output_names, outputs, run.probe)
        shapes = static_shapes(run.prepared, run.probe, dict(run.options.input_shapes))
        threads = THREADS if run.options.target is None else run.meter.threads
        try:
            models, results = self._convert(run, shapes)
            measured, variant_outputs = _measure(models, results, reference, run, threads)
            made = Made(self.target, measured, dict(models), chosen=PREFIX + (self.plan.result or "fp32"))
            if run.options.auto is not None:
                made.auto, made.chosen = _choose(measured, variant_outputs, reference, run.options.auto)
                made.written = {made.chosen: models[made.chosen]}  # auto mode writes the result only
        except ModelError as exc:
            if len(run.options.targets) == 1:
                raise
            return Made(self.target, [], {}, error=exc)
        return made

    def _convert(
        self, run: CompressRun, shapes: Mapping[str, tuple[int, ...]]
    ) -> tuple[dict[str, TFLiteModel], dict[str, list[PassResult]]]:
        """Every planned variant converted from the prepared graph; a model TFLite cannot express raises."""
        options = run.options
        models: dict[str, TFLiteModel] = {}
        results: dict[str, list[PassResult]] = {}
        for variant in self.plan.variants:
            name = PREFIX + variant
            config = TFLiteConfig(variant=variant, io_layout=options.tflite_layout, input_shapes=dict(shapes))
            results[name] = []
            qdq = None
            if variant == "int8":
                qdq, results[name] = _static_qdq(run.prepared, run.ctx, options.static)
            models[name], step = convert_step(run.prepared, config, run.ctx, qdq)
            results[name].append(step)
        return models, results


def report_entry(made: Made[TFLiteModel]) -> TFLiteResult:
    """The report's ``tflite``: the result and its layouts, or the error that stopped the output."""
    if made.error is not None:
        return TFLiteResult(error=str(made.error), exit_code=made.error.exit_code)
    return TFLiteResult(made.chosen, made.auto, layouts=made.written[made.chosen].layouts())


def convert_step(
    prepared: onnx.ModelProto, config: TFLiteConfig, ctx: PassContext, qdq: onnx.ModelProto | None
) -> tuple[TFLiteModel, PassResult]:
    """One conversion, recorded like a pass: config, seconds, graph before and after, layouts."""
    start = time.perf_counter()
    model = convert(prepared, config, calibration=ctx.calibration, qdq=qdq)
    seconds = time.perf_counter() - start
    params, weight_bytes = constant_stats(model.data)
    after = GraphFacts(sum(model.op_counts.values()), params, weight_bytes, dict(model.op_counts))
    details: dict[str, Any] = {"layouts": model.layouts()} | model.details
    step = PassResult(
        "tflite", config.to_json(), seconds, GraphFacts.of(prepared), after, details, list(model.warnings)
    )
    return model, step


def _static_qdq(
    prepared: onnx.ModelProto, ctx: PassContext, static: passes.QuantizeStaticConfig
) -> tuple[onnx.ModelProto, list[PassResult]]:
    """The static INT8 pass as the TFLite writer needs it: per channel, int8 activations, full range."""
    config = dataclasses.replace(
        static, per_channel=True, reduce_range=False, activation_type="int8", nodes_to_exclude=()
    )
    return Pipeline([passes.create(passes.QuantizeStatic.name, config)]).run(prepared, ctx)


def _measure(
    models: dict[str, TFLiteModel],
    results: dict[str, list[PassResult]],
    reference: Reference,
    run: CompressRun,
    threads: int,
) -> tuple[list[ModelMeasurement], dict[str, list[np.ndarray]]]:
    """Outputs, fidelity and accuracy on the probe samples, then latency at batch 1, the models in turns."""
    meter, probe = run.meter, reference.probe
    runners = {name: LiteRtRunner(m, threads=threads, label=f"{name} model") for name, m in models.items()}
    measured, outputs = [], {}
    for name, runner in runners.items():
        batches = list(meter.progress.track(meter.eval_batches, f"evaluating {name}"))
        by_name = dict(zip(runner.output_names, runner.run_onnx(batches), strict=True))
        outputs[name] = [by_name[n][: probe.size] for n in reference.names]
        data = runner.model.data
        m = ModelMeasurement(name, Size.of(data), [], passes=results[name], engine="litert", threads=threads)
        m.fidelity = fidelity.compare_all(reference.names, reference.outputs, outputs[name])
        if probe.labels is not None:
            m.accuracy = fidelity.accuracy(outputs[name], probe.labels)
        measured.append(m)
    first = next(iter(runners.values()))
    feeds = first.model_feeds(latency.tile_feeds(meter.eval_batches[0], first.batch))
    for m, lat in zip(measured, latency.measure_interleaved(list(runners.values()), feeds, meter.budget), strict=True):
        m.latency.append(lat)
    return measured, outputs


def _choose(
    measured: list[ModelMeasurement],
    outputs: dict[str, list[np.ndarray]],
    reference: Reference,
    options: AutoOptions,
) -> tuple[AutoResult, str]:
    """Score every variant under the budget and choose as auto mode does, speeds relative to ``tflite-fp32``."""
    labels = reference.probe.labels
    metric = choose_metric(
        options.metric, has_labels=labels is not None, reference=reference.outputs, names=reference.names
    )
    target = labels if metric.uses_labels else reference.outputs
    result = AutoResult(options.budget, metric, metric(reference.outputs, target), options.prefer)
    higher = metric.higher_is_better
    for m in measured:
        value = metric(outputs[m.name], target)
        result.scores[m.name] = value
        meets = options.budget.meets(value, result.baseline, higher_is_better=higher)
        trial = Trial(m.name, "candidate", m.passes[-1].config, size_bytes=m.size.raw, metric=value, meets_budget=meets)
        trial.seconds, trial.latency = sum(p.seconds for p in m.passes), m.latency
        result.trials.append(trial)
    fp32 = measured[0]
    meeting = [m for m, t in zip(measured[1:], result.trials[1:], strict=True) if t.meets_budget]
    threshold = options.budget.threshold(result.baseline, higher_is_better=higher)
    if meeting:
        choice = choose(
            fp32,
            fp32,
            meeting,
            prefer=options.prefer,
            tolerance=options.latency_tolerance,
            behind=options.fastest_tolerance,
            yardstick=FP32,
            kept=f"{FP32} (the converted FP32 graph",
        )
        chosen, result.choice = choice.name, choice.notes
    elif result.trials[0].meets_budget:
        chosen = FP32
        result.choice = [f"no compressed TFLite variant meets the budget: writing {FP32}"]
    else:
        chosen = max(measured, key=lambda m: metric.rank_key(result.scores[m.name])).name
        result.choice = [f"no TFLite variant meets the budget: writing the closest, {chosen}"]
    value = result.scores[chosen]
    if meeting or (chosen == FP32 and result.trials[0].meets_budget):
        result.verdict = Verdict(met=True, threshold=threshold, value=value)
    else:
        missed = (threshold - value) if higher else (value - threshold)
        advice = f"the TFLite conversion itself changes the outputs ({FP32} misses too): check the model's ops"
        result.verdict = Verdict(met=False, threshold=threshold, value=value, missed_by=missed, advice=advice)
    return result, chosen


def static_shapes(
    prepared: onnx.ModelProto, probe: Dataset, given: Mapping[str, Sequence[int]]
) -> dict[str, tuple[int, ...]]:
    """Static ONNX shapes for inputs with free dimensions beyond the batch: ``--input-shape``, else the data's.

    The batch stays free here (the writer makes it 1).
    """
    shapes = {}
    for spec in graph_inputs(prepared):
        dims = spec.shape or ()
        if all(isinstance(d, int) and d > 0 for d in dims[1:]):
            continue
        source = given.get(spec.name) or probe.inputs[spec.name].shape
        first = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else 1
        shapes[spec.name] = (first, *(int(d) for d in source[1:]))
    return shapes
