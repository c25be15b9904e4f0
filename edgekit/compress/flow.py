"""``edgekit compress``: prepare the model, make each target's variants, measure everything, write the result.

The flow, each step a plain call::

    open_run: load → validate → cleanup ─┬─ ONNX output:   make → measure → choose ─┬─ report → write
                                         └─ TFLite output: make → measure → choose ─┘

The ONNX output (:mod:`.onnx_output`) makes the modes asked for (int8-static, int8-dynamic, fp16,
prune); with a budget (auto mode, the CLI's default) they are candidates instead: each is scored, INT8
ones that miss keep their most sensitive nodes in float, and one is chosen (:mod:`edgekit.auto`); only
it is written. With ``targets`` (``--to``) holding ``tflite``, the cleaned-up graph is also converted
to ``.tflite`` variants, measured in LiteRT and chosen the same way (:mod:`.tflite_output`); with
``tflite`` alone, no ONNX variant is made. The first target's result is bundled (:mod:`.write`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit import __version__
from edgekit.compress import target, write
from edgekit.compress.onnx_output import OnnxOutput
from edgekit.compress.options import CompressOptions
from edgekit.compress.run import CompressRun, open_run
from edgekit.compress.tflite_output import TFLiteOutput, report_entry
from edgekit.errors import ConfigError
from edgekit.passes.base import Progress, SilentProgress
from edgekit.report import Report
from edgekit_runtime.cpu import CpuInfo, host_cpu

if TYPE_CHECKING:
    from pathlib import Path

    from edgekit.compress.output import Made, Output
    from edgekit.report import ModelMeasurement


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
    options = target.for_target(options or CompressOptions())
    options.check()
    outputs = _outputs(options)
    progress = progress or SilentProgress()
    cpu = cpu or host_cpu()
    _check_out_dir(out_dir)

    needs_calibration = any(o.needs_calibration for o in outputs)
    with open_run(model_path, options, needs_calibration=needs_calibration, progress=progress, cpu=cpu) as run:
        # the ONNX output measures the original with its variants; with --to tflite alone it is measured by itself
        alone = None if "onnx" in options.targets else run.measure_with_original([])[0]
        made = [output.make(run) for output in outputs]
        report = _report(run, alone, made)
        write.write(run, report, made, out_dir)
    return report


def _outputs(options: CompressOptions) -> list[Output]:
    """The targets' outputs, ONNX first; planning one checks its configs, before any work."""
    outputs: list[Output] = []
    if "onnx" in options.targets:
        outputs.append(OnnxOutput.for_options(options))
    if "tflite" in options.targets:
        outputs.append(TFLiteOutput.for_options(options))
    return outputs


def _report(run: CompressRun, alone: ModelMeasurement | None, made: list[Made[Any]]) -> Report:
    """The report of what the outputs made; the first target's result is the report's."""
    by_target = {m.target: m for m in made}
    original = next(m for m in (alone, *(m.original for m in made)) if m is not None)
    variants = [v for m in made for v in m.measured]
    options, imported = run.options, run.imported
    return Report(
        edgekit_version=__version__,
        source=str(run.source),
        cpu=run.cpu.describe(),
        threads=run.threads,
        data=_data_notes(run),
        preparation=run.preparation,
        original=original,
        variants=variants,
        chosen=next(m.chosen for t in options.targets if (m := by_target[t]).chosen),
        warnings=[
            *_warnings(run, variants),
            *(w for m in made for w in m.warnings),
            *target.on_host(options, run.cpu, run.threads),
        ],
        auto=by_target["onnx"].auto if "onnx" in by_target else None,
        imported=None if imported is None else {"kind": imported.kind, "notes": list(imported.notes)},
        targets=options.targets,
        tflite=report_entry(by_target["tflite"]) if "tflite" in by_target else None,
        target=target.note(options, run.threads),
    )


def _data_notes(run: CompressRun) -> dict[str, object]:
    calib, evaluation, probe, pre = run.calib, run.evaluation, run.probe, run.options.preprocess
    return {
        "preprocess": None if pre is None else pre.to_json(),
        "calibration": None
        if calib is None
        else {"source": calib.source, "samples": calib.size, "synthetic": calib.synthetic},
        "evaluation": None if evaluation is None else {"source": evaluation.source, "samples": evaluation.size},
        "fidelity_inputs": {"source": probe.source, "samples": probe.size, "synthetic": probe.synthetic},
    }


def _warnings(run: CompressRun, variants: list[ModelMeasurement]) -> list[str]:
    calib, probe = run.calib, run.probe
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
    out += [note for data in (calib, run.evaluation) if data is not None for note in data.notes]
    out += [w for p in run.preparation for w in p.warnings]
    out += [
        f"{v.name}: {w}" for v in variants for w in v.warnings if not (calib and calib.synthetic and "synthetic" in w)
    ]
    return out


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output '{out_dir}' exists and is a file: pass a folder with -o")
