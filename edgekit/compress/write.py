"""What an ``edgekit compress`` run writes: the models, the bundle of the result, and ``report.json`` last.

Everything is staged in the run's scratch folder and moved into the output folder only when every step
succeeded, ``report.json`` last (it marks a finished run). The first target's result is the bundled
one: ``model.onnx`` (ONNX Runtime) or ``model.tflite`` (LiteRT, with each input's layout in the
manifest); other written variants are named after themselves (``fp16.onnx``, ``tflite-fp16.tflite``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from edgekit.atomic_files import copy_atomic
from edgekit.model_io import save_model
from edgekit.tflite.config import TFLiteModel

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import onnx

    from edgekit.bundle.pack import BundleOptions
    from edgekit.compress.output import Made
    from edgekit.compress.run import CompressRun
    from edgekit.report import Report

MODEL_FILE = "model.onnx"
TFLITE_FILE = "model.tflite"
REPORT_FILE = "report.json"


def write(run: CompressRun, report: Report, made: Sequence[Made[Any]], out_dir: Path) -> None:
    """Stage what the outputs made and the bundle the options ask for, then move it all into ``out_dir``.

    A result that missed its budget is not bundled (a bundle is what devices deploy) unless the options
    say ``bundle_anyway``; ``report.bundle`` says which, and why.
    """
    stage = run.workdir / "out"
    stage.mkdir()
    for output in made:
        stage_models(stage, report, output)
    result = next(m for m in made if report.chosen in m.written)
    missed = result.auto is not None and result.auto.verdict is not None and not result.auto.verdict.met
    if run.options.bundle is not None and (run.options.bundle_anyway or not missed):
        bundle(stage, report, result.written[report.chosen], run, run.options.bundle, missed_budget=missed)
    else:
        if run.options.bundle is not None:
            why = f"the result, {report.chosen}, missed its budget"
            report.bundle = {"written": False, "file": None, "missed_budget": True, "withheld": why}
        report.files.append(REPORT_FILE)
    move_in(out_dir, stage, report)


def stage_models(stage: Path, report: Report, made: Made[Any]) -> None:
    """Save an output's models into the staging folder; the report lists them, and each variant its file."""
    by_name = {v.name: v for v in report.variants}
    for name, model in made.written.items():
        paths = _save(model, stage, name, result=name == made.chosen)
        by_name[name].file = paths[0].name
        report.files += [p.name for p in paths]


def _save(model: onnx.ModelProto | TFLiteModel, stage: Path, name: str, *, result: bool) -> list[Path]:
    """The result as ``model.onnx`` or ``model.tflite``, another variant under its name; the files written."""
    if isinstance(model, TFLiteModel):
        return [model.save(stage / (TFLITE_FILE if result else f"{name}.tflite"))]
    return save_model(model, stage / (MODEL_FILE if result else f"{name}.onnx"))


def move_in(out_dir: Path, stage: Path, report: Report) -> None:
    """Write the report into the staging folder, then move the finished files in: nothing is left half-written."""
    report.write(stage / REPORT_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(stage.iterdir(), key=lambda p: p.name == REPORT_FILE):  # report last: it marks completion
        copy_atomic(item, out_dir / item.name)  # one mode for what edgekit hands out, bundles included


def bundle(
    stage: Path,
    report: Report,
    model: onnx.ModelProto | TFLiteModel,
    run: CompressRun,
    options: BundleOptions,
    *,
    missed_budget: bool = False,
) -> None:
    """Bundle the result (``report.chosen``) into ``stage``; the report lists the bundle before it goes inside it."""
    from datetime import datetime, timezone

    from edgekit.bundle import pack
    from edgekit.bundle.manifest import name_from
    from edgekit.bundle.source import converted_tflite_input, in_layout, onnx_input, write_bundle

    preprocess, datasets, input_shapes = run.options.preprocess, run.datasets, run.options.input_shapes
    if options.preprocessing is None and preprocess is not None:
        options = dataclasses.replace(options, preprocessing=preprocess.to_json())
    name = options.name or name_from(str(report.source))
    file = pack.bundle_path(stage, name, options.version).name
    report.files += [file, REPORT_FILE]
    report.bundle = {"written": True, "file": file, "missed_budget": missed_budget, "withheld": None}
    source = {"kind": "onnx" if run.imported is None else run.imported.kind, "file": run.loaded.path.name}
    if isinstance(model, TFLiteModel):
        model_input = converted_tflite_input(model, source=source, original=run.loaded.model, report=report.to_json())
        datasets = [in_layout(d, model) for d in datasets]
        input_shapes = ()
        options = _preprocessing_in_layout(options, model)
    else:
        model_input = onnx_input(
            model, source=source, original=run.loaded.model, imported=run.imported, report=report.to_json()
        )
    write_bundle(
        model_input,
        stage,
        dataclasses.replace(options, name=name),
        datasets,
        label=name,
        fallback=datetime.now(timezone.utc),
        input_shapes=input_shapes,
    )


def _preprocessing_in_layout(options: BundleOptions, model: TFLiteModel) -> BundleOptions:
    """A device repeats the preprocessing: it must lay images out as the ``.tflite`` model takes them."""
    pre = dict(options.preprocessing or {})
    if pre.get("layout") and model.inputs:
        pre["layout"] = "nhwc" if model.inputs[0].layout == "NHWC" else pre["layout"]
        return dataclasses.replace(options, preprocessing=pre)
    return options
