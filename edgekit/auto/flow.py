"""Auto mode end to end: score the FP32 model, search, time the survivors, choose, give the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit import passes
from edgekit.auto.candidates import FP32, choose
from edgekit.auto.metrics import choose_metric
from edgekit.auto.result import AutoResult, Verdict
from edgekit.auto.search import AutoSearch
from edgekit.measure import fidelity
from edgekit.measure.size import Size
from edgekit.model_io import model_bytes
from edgekit.passes.quantize_common import ensure_node_names
from edgekit.passes.quantize_static import prepare_for_quantization
from edgekit.report import ModelMeasurement

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import onnx

    from edgekit.auto.candidates import Candidate
    from edgekit.auto.metrics import Metric
    from edgekit.auto.result import Trial
    from edgekit.auto.search import AutoOptions, Built
    from edgekit.data import Dataset
    from edgekit.measure.meter import Meter
    from edgekit.model_io import LoadedModel
    from edgekit.passes.base import PassContext


@dataclass
class AutoOutcome:
    """What compress writes and reports after a budgeted search."""

    original: ModelMeasurement
    measured: list[ModelMeasurement]
    chosen: str
    model: onnx.ModelProto
    result: AutoResult
    warnings: list[str]


def run_auto(
    *,
    original: LoadedModel,
    prepared: onnx.ModelProto,
    candidates: Sequence[Candidate],
    ctx: PassContext,
    meter: Meter,
    probe: Dataset,
    options: AutoOptions,
) -> AutoOutcome:
    """Search ``candidates`` under ``options.budget`` and choose the result."""
    orig_data = model_bytes(original.model)
    orig_runner, reference = meter.outputs("original", orig_data)
    has_labels = probe.labels is not None
    names = orig_runner.output_names
    metric = choose_metric(options.metric, has_labels=has_labels, reference=reference, names=names, hints=meter.hints)
    target = probe.labels if metric.uses_labels else reference
    result = AutoResult(options.budget, metric, metric(reference, target), options.prefer)

    prepared = _named(prepared)
    candidates = [c for c in candidates if c.suits(prepared)]  # weight-only ones only where large MatMuls are
    inputs = dict.fromkeys(passes.VARIANT_PASSES, prepared)
    warnings = []
    if any(c.pass_name == passes.QuantizeStatic.name for c in candidates):
        inputs[passes.QuantizeStatic.name], notes = prepare_for_quantization(prepared, ctx.workdir)
        warnings += [f"int8-static: {n}" for n in notes]
    search = AutoSearch(
        inputs=inputs, ctx=ctx, meter=meter, metric=metric, target=target, result=result, options=options
    )
    built = search.run(candidates)

    fp32_data = model_bytes(prepared)
    fp32_runner, fp32_outputs = meter.outputs(FP32, fp32_data)
    orig_m = _measurement("original", Size(original.file_bytes, Size.of(orig_data).zipped))
    fp32_m = _measurement(FP32, Size.of(fp32_data))
    built_m = [_measurement(b.name, Size.of(b.data), b) for b in built]
    scored: list[tuple[ModelMeasurement, list[np.ndarray], float | None]] = [
        (orig_m, reference, None),
        (fp32_m, fp32_outputs, None),
    ]
    scored += [(m, b.outputs, b.trial.metric) for m, b in zip(built_m, built, strict=True)]
    for m, outputs, known in scored:
        if probe.labels is not None:
            m.accuracy = fidelity.accuracy(outputs, probe.labels)
        if m is not orig_m:
            m.fidelity = fidelity.compare_all(names, reference, outputs, metric.kinds)
        result.scores[m.name] = known if known is not None else metric(outputs, target)
    everything = [orig_m, fp32_m, *built_m]
    meter.time_all([orig_runner, fp32_runner, *(b.runner for b in built)], everything)
    for m, b in zip(built_m, built, strict=True):
        b.trial.latency = m.latency

    meeting = [m for m, b in zip(built_m, built, strict=True) if b.trial.meets_budget]
    if meeting:
        choice = choose(
            orig_m,
            fp32_m,
            meeting,
            prefer=options.prefer,
            tolerance=options.latency_tolerance,
            behind=options.fastest_tolerance,
        )
        chosen, result.choice = choice.name, choice.notes
    elif not built:  # nothing in this model is what the candidates compress (e.g. a tree ensemble's attributes)
        chosen = FP32
        engine = any(t.error and t.error.startswith(("failed to load", "failed to run")) for t in result.trials)
        why = "could be loaded and run" if engine else "applies to this model"
        result.choice = [f"no candidate {why} (the table says why): writing the FP32 graph"]
    else:
        chosen = max(built, key=lambda b: metric.rank_key(b.trial.metric)).name
        result.choice = [f"no variant meets the budget: writing the closest, {chosen}"]
    result.verdict = _verdict(result, chosen, candidates, met=bool(meeting) or (not built and _meets(result, FP32)))
    if not meeting:
        result.verdict.tried = _tried(result, [(b.trial, worst_output(names, reference, b, metric)) for b in built])
    model = prepared if chosen == FP32 else next(b.model for b in built if b.name == chosen)
    return AutoOutcome(orig_m, [fp32_m, *built_m], chosen, model, result, warnings)


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    ensure_node_names(out)  # exclusions and the sensitivity ranking name nodes
    return out


def _measurement(name: str, size: Size, built: Built | None = None) -> ModelMeasurement:
    return ModelMeasurement(name, size, [], passes=built.results if built else [])


def _meets(result: AutoResult, name: str) -> bool:
    higher = result.metric.higher_is_better
    threshold = result.budget.threshold(result.baseline, higher_is_better=higher)
    value = result.scores[name]
    return value >= threshold if higher else value <= threshold


def _verdict(result: AutoResult, chosen: str, candidates: Sequence[Candidate], *, met: bool) -> Verdict:
    """Met when some compressed variant meets the budget (FP32 may still be written when it is faster)."""
    higher, baseline = result.metric.higher_is_better, result.baseline
    threshold = result.budget.threshold(baseline, higher_is_better=higher)
    value = result.scores[chosen]
    if met:
        return Verdict(met=True, threshold=threshold, value=value)
    missed_by = (threshold - value) if higher else (value - threshold)
    advice = []
    if baseline:
        needed = abs(baseline - value) / abs(baseline)
        advice.append(f"--budget {needed:.2%} would accept {chosen}")
    if not any(c.pass_name == passes.QuantizeStatic.name for c in candidates):
        advice.append("pass --calib with real inputs to try static INT8")
    if result.stopped and ("--max-trials" in result.stopped or "--time-limit" in result.stopped):
        advice.append("raise --max-trials or --time-limit to search further")
    advice.append("or deploy the FP32 model")
    return Verdict(met=False, threshold=threshold, value=value, missed_by=missed_by, advice="; ".join(advice))


def worst_output(names: Sequence[str], reference: Sequence[np.ndarray], built: Built, metric: Metric) -> str | None:
    """The output that scored worst, where the metric is each output's fidelity (``None`` otherwise)."""
    if metric.uses_labels or metric.kinds is None or metric.name not in {"agreement", "cosine"}:
        return None
    scores = fidelity.compare_all(names, reference, built.outputs, metric.kinds)
    return min(scores, key=lambda f: f.value).name


def _tried(result: AutoResult, measured: Sequence[tuple[Trial, str | None]]) -> list[str]:
    """One clause per candidate: why it failed, or the best it reached against the threshold (and where)."""
    higher = result.metric.higher_is_better
    threshold = result.budget.threshold(result.baseline, higher_is_better=higher)
    worst = {id(t): name for t, name in measured}
    clauses = []
    for cand in dict.fromkeys(t.candidate for t in result.trials):
        trials = [t for t in result.trials if t.candidate == cand]
        scored = [t for t in trials if t.metric is not None and not t.failed]
        if not scored:
            clauses.append(f"{cand}: {trials[-1].error or 'not scored'}")
            continue
        best = max(scored, key=lambda t: result.metric.rank_key(t.metric))
        kept = f"{len(best.excluded)} node(s) kept in float, " if best.excluded else ""
        where = f" (output {worst[id(best)]})" if worst.get(id(best)) else ""
        value = f"{result.metric.name} {best.metric:.4g} {'<' if higher else '>'} {threshold:.4g}"
        clauses.append(f"{cand}: {kept}{value}{where}")
    return clauses
