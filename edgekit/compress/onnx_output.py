"""The ONNX output of a compress run (``--to onnx``): the modes asked for, or the budgeted search's result.

Without a budget each mode's pass *makes* a variant from the prepared graph, every variant is *measured*
together with the original (their timing runs take turns), and the first mode is *chosen*; every
variant is written. Under a budget (auto mode) the modes are candidates and :mod:`edgekit.auto.flow`
makes, measures and chooses them in one search (INT8 variants that miss keep their most sensitive nodes
in float); only the result is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edgekit import auto, passes
from edgekit.compress import target
from edgekit.compress.output import Made
from edgekit.model_io import model_bytes
from edgekit.pipeline import Pipeline

if TYPE_CHECKING:
    import onnx

    from edgekit.compress.options import CompressOptions
    from edgekit.compress.run import CompressRun

_NEEDS_CALIBRATION = {passes.QuantizeStatic.name}


def candidates(options: CompressOptions, *, has_calibration: bool) -> list[auto.Candidate]:
    """The modes asked for, each with its config (checked now); in auto mode with none asked, the default set."""
    if options.auto is not None and not options.modes:
        found = auto.auto_candidates(
            fp16=options.fp16, dynamic=options.dynamic, static=options.static, has_calibration=has_calibration
        )
        found = target.searched(options, found)
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


@dataclass(frozen=True)
class OnnxOutput:
    """The ONNX variants of a run, from its candidates (checked when planned, before any work)."""

    target: ClassVar[str] = "onnx"
    candidates: tuple[auto.Candidate, ...]

    @classmethod
    def for_options(cls, options: CompressOptions) -> OnnxOutput:
        """The candidates ``options`` ask for; a config a pass refuses raises here."""
        return cls(tuple(candidates(options, has_calibration=options.calib is not None)))

    @property
    def needs_calibration(self) -> bool:
        """Static INT8 needs calibration batches."""
        return any(c.pass_name in _NEEDS_CALIBRATION for c in self.candidates)

    def make(self, run: CompressRun) -> Made[onnx.ModelProto]:
        """Every mode asked for, or under a budget the search's result."""
        if run.options.auto is None:
            return self._every_mode(run)
        return self._search(run, run.options.auto)

    def _every_mode(self, run: CompressRun) -> Made[onnx.ModelProto]:
        """Make every mode, measure them with the original, choose the first."""
        made = {
            c.name: Pipeline([passes.create(c.pass_name, c.config)]).run(run.prepared, run.ctx) for c in self.candidates
        }
        original, variants = run.measure_with_original(
            [(name, model_bytes(model), results) for name, (model, results) in made.items()]
        )
        models = {name: model for name, (model, _) in made.items()}
        return Made(self.target, variants, models, chosen=self.candidates[0].name, original=original)

    def _search(self, run: CompressRun, options: auto.AutoOptions) -> Made[onnx.ModelProto]:
        """Auto mode: search, measure and choose under the budget; the chosen model only is written."""
        from edgekit.auto.flow import run_auto

        outcome = run_auto(
            original=run.loaded,
            prepared=run.prepared,
            candidates=self.candidates,
            ctx=run.ctx,
            meter=run.meter,
            probe=run.probe,
            options=options,
        )
        return Made(
            self.target,
            outcome.measured,
            {outcome.chosen: outcome.model},
            chosen=outcome.chosen,
            auto=outcome.result,
            warnings=outcome.warnings,
            original=outcome.original,
        )
