"""What an ``edgekit compress`` run writes: the models, the bundle of the result, and ``report.json`` last.

Everything is staged in a temporary folder and moved into the output folder only when every step
succeeded, ``report.json`` last (it marks a finished run). The first target's result is the bundled
one: ``model.onnx`` (ONNX Runtime) or ``model.tflite`` (LiteRT, with each input's layout in the
manifest); other written variants are named after themselves (``fp16.onnx``, ``tflite-fp16.tflite``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import TYPE_CHECKING

from edgekit.model_io import save_model

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import onnx

    from edgekit import importers
    from edgekit.bundle.pack import BundleOptions
    from edgekit.data import Dataset
    from edgekit.images import Preprocess
    from edgekit.model_io import LoadedModel
    from edgekit.report import Report
    from edgekit.tflite import TFLiteModel

MODEL_FILE = "model.onnx"
TFLITE_FILE = "model.tflite"
REPORT_FILE = "report.json"


def stage_models(
    stage: Path,
    report: Report,
    onnx_models: Mapping[str, onnx.ModelProto],
    onnx_chosen: str | None,
    tflite_models: Mapping[str, TFLiteModel],
) -> None:
    """Save the models into the staging folder; the report lists them, and each variant its file."""
    by_name = {v.name: v for v in report.variants}
    for name in sorted(onnx_models, key=lambda n: n != onnx_chosen):  # the result first
        model = onnx_models[name]
        paths = save_model(model, stage / (MODEL_FILE if name == onnx_chosen else f"{name}.onnx"))
        by_name[name].file = paths[0].name
        report.files += [p.name for p in paths]
    chosen = report.tflite.chosen if report.tflite is not None else None
    for name, tflite in tflite_models.items():
        path = tflite.save(stage / (TFLITE_FILE if name == chosen else f"{name}.tflite"))
        by_name[name].file = path.name
        report.files.append(path.name)


def write(out_dir: Path, stage: Path, report: Report) -> None:
    """Write the report into the staging folder, then move the finished files in: nothing is left half-written."""
    report.write(stage / REPORT_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(stage.iterdir(), key=lambda p: p.name == REPORT_FILE):  # report last: it marks completion
        target = out_dir / item.name
        tmp = out_dir / f".{item.name}.{os.getpid()}.tmp"
        shutil.copyfile(item, tmp)
        tmp.replace(target)


def bundle(  # noqa: PLR0917  (compress's state, passed on)
    stage: Path,
    report: Report,
    model: onnx.ModelProto | TFLiteModel,
    loaded: LoadedModel,
    imported: importers.Imported | None,
    bundle_options: BundleOptions,
    datasets: list[Dataset],
    preprocess: Preprocess | None,
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...],
) -> None:
    """Bundle the result (``report.chosen``) into ``stage``; the report lists the bundle before it goes inside it."""
    from datetime import datetime, timezone

    from edgekit.bundle import pack
    from edgekit.bundle.manifest import name_from
    from edgekit.bundle.source import converted_tflite_input, in_layout, onnx_input, write_bundle
    from edgekit.tflite import TFLiteModel

    if bundle_options.preprocessing is None and preprocess is not None:
        bundle_options = dataclasses.replace(bundle_options, preprocessing=preprocess.to_json())
    name = bundle_options.name or name_from(str(report.source))
    report.files += [pack.bundle_path(stage, name, bundle_options.version).name, REPORT_FILE]
    source = {"kind": "onnx" if imported is None else imported.kind, "file": loaded.path.name}
    if isinstance(model, TFLiteModel):
        model_input = converted_tflite_input(model, source=source, original=loaded.model, report=report.to_json())
        datasets = [in_layout(d, model) for d in datasets]
        input_shapes = ()
        bundle_options = _preprocessing_in_layout(bundle_options, model)
    else:
        model_input = onnx_input(
            model, source=source, original=loaded.model, imported=imported, report=report.to_json()
        )
    write_bundle(
        model_input,
        stage,
        dataclasses.replace(bundle_options, name=name),
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
