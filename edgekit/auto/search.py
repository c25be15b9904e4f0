"""The budgeted search: try each candidate, and where an INT8 or FP16 one misses, keep its worst nodes in float.

The fallback ranks the candidate's quantized (or float16) nodes by the noise each adds
(:mod:`edgekit.auto.sensitivity`), then builds it again with the top 1, 2, 4, … of them kept in
float32 until the real metric meets the budget, and bisects back to the smallest such set: for FP16
that is mixed precision. It stops when the ranking is used up, or at ``max_trials`` / ``time_limit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit import passes
from edgekit.auto.budget import DEFAULT_BUDGET, Budget
from edgekit.auto.candidates import PREFERENCES, Candidate, Prefer
from edgekit.auto.result import AutoResult, KeptFloat, Trial
from edgekit.auto.sensitivity import dequantized_consumers, rank_nodes
from edgekit.errors import ConfigError, EdgekitError, EngineError
from edgekit.model_io import model_bytes
from edgekit.passes.fp16 import Fp16Config, converted_nodes
from edgekit.passes.quantize_common import quantizable_nodes
from edgekit.pipeline import Pipeline

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import onnx

    from edgekit.auto.metrics import Metric
    from edgekit.measure.meter import Meter
    from edgekit.measure.session import OrtRunner
    from edgekit.passes.base import PassContext
    from edgekit.pipeline import PassResult

#: samples the sensitivity ranking runs on (every intermediate tensor is kept, so keep it small)
RANKING_SAMPLES = 16


@dataclass(frozen=True)
class AutoOptions:
    """How ``edgekit compress --budget`` searches."""

    budget: Budget = DEFAULT_BUDGET
    #: ``None`` chooses from the data (see :func:`edgekit.auto.metrics.choose_metric`)
    metric: str | None = None
    prefer: Prefer = "latency"
    #: fallback trials (re-quantizations with nodes kept in float), over all candidates
    max_trials: int = 12
    #: seconds after which no new fallback trial starts
    time_limit: float = 900.0
    #: speeds within this fraction of each other count as equal (timing noise on shared machines)
    latency_tolerance: float = 0.05
    #: a variant whose time is clearly beyond ``1 +`` this times the fastest's is out of the running, however
    #: small (wide, so that the noise between near-equal variants does not decide between them)
    fastest_tolerance: float = 0.25
    #: keep sensitive nodes in float when an INT8 candidate misses
    fallback: bool = True

    def check(self) -> None:
        """Refuse impossible settings before any work."""
        if self.prefer not in PREFERENCES:
            raise ConfigError(f"--prefer '{self.prefer}' is unknown: choose from {', '.join(PREFERENCES)}")
        if self.max_trials < 0:
            raise ConfigError(f"--max-trials {self.max_trials} is negative: use 0 to skip the fallback")
        if not self.time_limit > 0:
            raise ConfigError(f"--time-limit {self.time_limit:g} is not a duration: give seconds, more than 0")
        if self.metric is not None:
            from edgekit.auto.metrics import check_metric

            check_metric(self.metric)  # unknown names and import errors now, before any work


@dataclass
class Built:
    """A model the search built, with its session, outputs' score and how it was made."""

    name: str
    model: onnx.ModelProto
    data: bytes
    runner: OrtRunner
    outputs: list[np.ndarray]
    results: list[PassResult]
    trial: Trial


class AutoSearch:
    """Builds and scores candidates on one :class:`Meter`; fills in an :class:`AutoResult`."""

    def __init__(
        self,
        *,
        inputs: dict[str, onnx.ModelProto],
        ctx: PassContext,
        meter: Meter,
        metric: Metric,
        target: Any,  # noqa: ANN401  (labels or the FP32 outputs, as the metric takes)
        result: AutoResult,
        options: AutoOptions,
    ) -> None:
        """``inputs`` maps a pass name to the float model it starts from (static INT8 starts pre-processed)."""
        self.inputs = inputs
        self.ctx = ctx
        self.meter = meter
        self.metric = metric
        self.target = target
        self.result = result
        self.options = options
        self.trials_left = options.max_trials
        self.deadline = time.monotonic() + options.time_limit

    def run(self, candidates: Sequence[Candidate]) -> list[Built]:
        """Every candidate that could be built, plus a ``+fallback`` model for each INT8 one that needed it."""
        built = [b for c in candidates if (b := self.build(c, step="candidate")) is not None]
        for cand in candidates:
            first = next((b for b in built if b.name == cand.name), None)
            if first is None or first.trial.meets_budget or not cand.falls_back or not self.options.fallback:
                continue
            if self._out_of_budget():
                break
            better = self.fallback(cand, first)
            if better is not None:
                built.append(better)
        return built

    def build(self, cand: Candidate, *, step: str, excluded: Sequence[str] = ()) -> Built | None:
        """Run the candidate's pass and score it; a failure is recorded as a trial, not raised."""
        trial_cand = cand.excluding(excluded) if excluded else cand
        trial = Trial(cand.name, step, trial_cand.config.to_json(), tuple(excluded))
        self.result.trials.append(trial)
        start = time.monotonic()
        name = cand.name if step == "candidate" else f"{cand.name}+fallback"
        try:
            variant = passes.create(cand.pass_name, trial_cand.config)
            model, results = Pipeline([variant]).run(self.inputs[cand.pass_name], self.ctx)
            data = model_bytes(model)
            trial.size_bytes = len(data)
            runner, outputs = self.meter.outputs(name, data)
            trial.metric = self.metric(outputs, self.target)
        except ConfigError:
            raise  # the user's own metric failing: theirs to fix, not this candidate's
        except Exception as exc:  # noqa: BLE001  (a candidate that breaks is a row with its reason, never a crash)
            trial.error, trial.metric = failure(exc), None
            trial.seconds = time.monotonic() - start
            return None
        trial.meets_budget = self.result.budget.meets(
            trial.metric, self.result.baseline, higher_is_better=self.metric.higher_is_better
        )
        trial.seconds = time.monotonic() - start
        return Built(name, model, data, runner, outputs, results, trial)

    def fallback(self, cand: Candidate, first: Built) -> Built | None:
        """Keep the most sensitive nodes in float, in growing prefixes of the ranking, until the budget holds."""
        float_model = self.inputs[cand.pass_name]
        if cand.pass_name == passes.QuantizeStatic.name:
            touched = dequantized_consumers(first.model)
        elif isinstance(cand.config, Fp16Config):  # mixed precision: float16 nodes back to float32
            touched = converted_nodes(float_model, cand.config)
        else:
            touched = quantizable_nodes(float_model, getattr(cand.config, "op_types", ()))
        already = set(getattr(cand.config, "nodes_to_exclude", ()))
        feeds = self.meter.sample_feeds(RANKING_SAMPLES)
        ranking = rank_nodes(
            float_model, first.model, [n for n in touched if n not in already], feeds, threads=self.meter.threads
        )
        self.result.sensitivity[cand.name] = ranking
        names = [s.node for s in ranking]  # to the end: nodes that seem to add no noise may still matter
        best_meeting: tuple[int, Built] | None = None
        best_missing: Built | None = None
        failed, k = 0, 1
        while names and not self._out_of_budget():
            self.trials_left -= 1
            built = self.build(cand, step="fallback", excluded=names[:k])
            if built is not None and built.trial.meets_budget:
                best_meeting = (k, built)
                break
            failed = k
            rival = best_missing or first
            if built is not None and self.metric.rank_key(built.trial.metric) > self.metric.rank_key(
                rival.trial.metric
            ):
                best_missing = built
            if k == len(names):
                self.result.stopped = f"{cand.name}: every quantized node in float and the budget still missed"
                break
            k = min(2 * k, len(names))
        while best_meeting is not None and best_meeting[0] - failed > 1 and not self._out_of_budget():
            mid = (failed + best_meeting[0]) // 2
            self.trials_left -= 1
            built = self.build(cand, step="fallback", excluded=names[:mid])
            if built is not None and built.trial.meets_budget:
                best_meeting = (mid, built)
            else:
                failed = mid
        chosen = best_meeting[1] if best_meeting else best_missing
        if chosen is not None:
            ranks = {s.node: KeptFloat(i + 1, s) for i, s in enumerate(ranking)}
            self.result.kept_float[chosen.name] = [ranks[n] for n in chosen.trial.excluded]
        return chosen

    def _out_of_budget(self) -> bool:
        if self.trials_left <= 0:
            self.result.stopped = self.result.stopped or f"--max-trials {self.options.max_trials} reached"
            return True
        if time.monotonic() > self.deadline:
            self.result.stopped = self.result.stopped or f"--time-limit {self.options.time_limit:g}s reached"
            return True
        return False


def failure(exc: Exception) -> str:
    """Why a candidate failed, in one line: the engine's own reason where it was the engine."""
    if isinstance(exc, EngineError):
        return f"failed to {exc.stage}: {exc.reason}"
    if isinstance(exc, EdgekitError):
        return f"failed: {exc.message}"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"failed: {type(exc).__name__}: {first}" if first else f"failed: {type(exc).__name__}"
