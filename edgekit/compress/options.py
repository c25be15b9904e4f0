"""What ``edgekit compress`` can be told: :class:`CompressOptions`, checked before any work.

The variants' own settings are the passes' configs (:mod:`edgekit.passes`), the budgeted search's
:class:`edgekit.auto.AutoOptions`, the timing's :class:`edgekit.measure.latency.LatencyBudget` and the
bundle's :class:`edgekit.bundle.pack.BundleOptions`; this holds them together with what the run reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgekit import auto, passes
from edgekit.errors import ConfigError
from edgekit.measure import latency
from edgekit.tflite.config import IO_LAYOUTS, IoLayout

if TYPE_CHECKING:
    from pathlib import Path

    from edgekit.bundle.pack import BundleOptions
    from edgekit.images import Preprocess
    from edgekit.passes.base import PassConfig
    from edgekit_runtime.targets import Target

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
    #: a stateful model's ``(state input, state output)`` pairs (``--state h:hn,c:cn``), fed back when the data holds
    #: sequences (:mod:`edgekit.measure.sequences`); ``None``: found by name and shape; ``()``: none
    state: tuple[tuple[str, str], ...] | None = None
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
    #: bundle the result even when it missed its budget (``--bundle-anyway``); by default such a result gets
    #: its model and report written but no bundle, since a bundle is what devices deploy
    bundle_anyway: bool = False
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
            passes.QuantizeWeight4.name: passes.QuantizeWeight4Config(),
            passes.QuantizeWeight8.name: passes.QuantizeWeight8Config(),
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
        elif self.bundle_anyway:
            raise ConfigError("--bundle-anyway asks for a bundle and --no-bundle for none: drop one of them")
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
