"""An output of a compress run (``--to onnx``, ``--to tflite``), and what it made.

Each output takes the run's prepared graph through the same steps: *make* its variants, *measure* them
against the original on the run's probe samples, *choose* the result (the first mode asked for, or the
best one under the budget). :mod:`.onnx_output` and :mod:`.tflite_output` are the two; the flow runs
each target's and the writer (:mod:`.write`) writes what they made. This module holds only the shared
types, so that the outputs, the flow and the writer depend on it and not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from edgekit.auto.result import AutoResult
    from edgekit.compress.run import CompressRun
    from edgekit.errors import ModelError
    from edgekit.report import ModelMeasurement

#: the kind of model an output makes (``onnx.ModelProto``, ``TFLiteModel``)
ModelT = TypeVar("ModelT")


@dataclass
class Made(Generic[ModelT]):
    """One output's measured variants, the models it writes and its result."""

    #: the output's target, as ``--to`` names it
    target: str
    #: the variants, measured (their pass warnings join the report's)
    measured: list[ModelMeasurement]
    #: the models to write, by variant name, in the order they are written (the ONNX result first); in auto
    #: mode the result only
    written: dict[str, ModelT]
    #: the result's name (``""``: the output failed, see ``error``)
    chosen: str = ""
    #: the budgeted search behind the choice (``None``: the first mode asked for is the result)
    auto: AutoResult | None = None
    #: what the output wants the report to say besides its variants' warnings
    warnings: list[str] = field(default_factory=list)
    #: the original, measured together with the variants (the ONNX output's; ``None`` for others)
    original: ModelMeasurement | None = None
    #: why the output made nothing while another target's result stands (``--to onnx,tflite``)
    error: ModelError | None = None


class Output(Protocol):
    """A target a run makes: its variants made, measured and one chosen, all from the run's state."""

    @property
    def target(self) -> str:
        """The target, as ``--to`` names it."""
        ...

    @property
    def needs_calibration(self) -> bool:
        """Whether a variant needs calibration batches (synthesized when the user gave none)."""
        ...

    def make(self, run: CompressRun) -> Made[Any]:
        """Make, measure and choose."""
        ...
