"""What a compression pass is, and what it hands back.

A pass is a small class with a ``name``, a frozen ``Config`` dataclass and
``run(model, ctx) -> PassOutput``. It never writes the user's files and never prints: it
returns a new model and a few facts about what it did. :class:`edgekit.pipeline.Pipeline`
times it and records the graph before and after.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import numpy as np
    import onnx

    from edgekit_runtime.cpu import CpuInfo


class Progress(Protocol):
    """Where long steps report how far they are (a rich progress bar, or nothing in tests)."""

    def track(self, items: list[Any], description: str) -> Iterator[Any]:
        """Yield ``items`` while showing progress."""
        ...


class SilentProgress:
    """A :class:`Progress` that shows nothing."""

    def track(self, items: list[Any], description: str) -> Iterator[Any]:  # noqa: ARG002
        """Yield the items."""
        yield from items


@dataclass
class PassContext:
    """What passes may read besides the model: data, the target CPU, a scratch folder."""

    workdir: Path
    cpu: CpuInfo
    #: calibration batches: each maps input name → array with a batch axis
    calibration: list[dict[str, np.ndarray]] | None = None
    calibration_synthetic: bool = False
    progress: Progress = field(default_factory=SilentProgress)


@dataclass
class PassOutput:
    """A pass's new model and what it wants the report to say."""

    model: onnx.ModelProto
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class PassConfig:
    """Mixin for pass configs: a JSON-friendly view of the fields."""

    def to_json(self) -> dict[str, Any]:
        """Field values, enums and paths as strings."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif not isinstance(value, (int, float, str, bool, list, dict, type(None))):
                value = str(value)
            out[f.name] = value
        return out


class Pass(Protocol):
    """The shape every pass has."""

    name: ClassVar[str]

    @property
    def config(self) -> PassConfig:
        """The pass's options."""
        ...

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:
        """Return a new model; never mutate ``model``."""
        ...
