"""``edgekit bundle pack``: a bundle from a model file, any importer's source, or a compress output folder.

Data for the golden self-test and the drift reference: ``--eval`` and ``--calib`` ``.npz`` archives. The
reference statistics come from the calibration data when given (it is what the model should see), else the
evaluation data; golden inputs from the evaluation data first. Without either, golden inputs are random
and ``reference.json`` says drift detection has no reference.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.bundle import golden, pack
from edgekit.bundle.manifest import compression_summary, name_from
from edgekit.data import Dataset, load_npz, synthesize
from edgekit.errors import ConfigError, ModelError
from edgekit.graph_stats import TensorSpec, graph_inputs, graph_outputs
from edgekit.importers import ImportOptions, import_model
from edgekit.measure.session import OrtRunner
from edgekit.model_io import model_bytes
from edgekit.tflite import layout

if TYPE_CHECKING:
    import onnx

    from edgekit.importers import Imported
    from edgekit.tflite import TFLiteModel
    from edgekit_runtime.bundle import Bundle

COMPRESS_REPORT = "report.json"
COMPRESS_MODEL = "model.onnx"


def onnx_runner(data: bytes, *, label: str = "model") -> pack.Runner:
    """Run an ONNX model on the CPU with one thread (the same answer every time), outputs by name."""
    runner = OrtRunner(data, threads=1, label=label)

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(runner.output_names, runner.run(feeds), strict=True))

    return run


def onnx_input(
    model: onnx.ModelProto,
    *,
    source: dict[str, Any],
    original: onnx.ModelProto | None = None,
    imported: Imported | None = None,
    report: dict[str, Any] | None = None,
) -> pack.PackInput:
    """What :func:`edgekit.bundle.pack.build` needs to bundle an ONNX model."""
    data = model_bytes(model)
    return pack.PackInput(
        backend="onnxruntime",
        data=data,
        inputs=graph_inputs(model),
        outputs=graph_outputs(model),
        run=onnx_runner(data),
        source=source,
        original_run=None if original is None else onnx_runner(model_bytes(original), label="original model"),
        labels=imported.labels if imported else None,
        feature_names=imported.feature_names if imported else None,
        report=report,
        compression=None if report is None else compression_summary(report),
    )


def tflite_input(data: bytes, *, source: dict[str, Any]) -> pack.PackInput:
    """What :func:`edgekit.bundle.pack.build` needs to bundle a ``.tflite`` model."""
    from edgekit.importers.tflite import host_specs, open_tflite

    backend = open_tflite(data)
    inputs, outputs = host_specs(backend)
    return pack.PackInput(backend="litert", data=data, inputs=inputs, outputs=outputs, run=backend.run, source=source)


def converted_tflite_input(
    model: TFLiteModel,
    *,
    source: dict[str, Any],
    original: onnx.ModelProto | None = None,
    report: dict[str, Any] | None = None,
) -> pack.PackInput:
    """A ``.tflite`` variant edgekit converted: the manifest says each input's and output's layout.

    Image inputs and outputs (and any other whose axes moved) gain ``layout`` (``NHWC``, or ``NCHW`` when
    kept as in ONNX) and ``perm`` (TFLite axis ``j`` holds ONNX axis ``perm[j]``); the model entry gains
    ``converted_from`` and ``variant``. Golden tolerances widen by the difference from the ``original``
    ONNX model, run in ONNX Runtime on the same inputs, transposed.
    """
    base = tflite_input(model.data, source=source)
    notes = {
        t.name: {k: v for k, v in t.to_json().items() if k not in {"name", "shape", "dtype"}}
        for t in [*model.inputs, *model.outputs]
        if t.layout != "onnx"  # image tensors, and any other whose axes moved; a [N, 10] output needs no note
    }
    original_run = None
    if original is not None:
        original_run = _through_layout(onnx_runner(model_bytes(original), label="original model"), model)
    return dataclasses.replace(
        base,
        original_run=original_run,
        report=report,
        compression=None if report is None else compression_summary(report),
        tensor_notes=notes,
        model_notes={"converted_from": "onnx", "variant": model.variant},
    )


def _through_layout(run: pack.Runner, model: TFLiteModel) -> pack.Runner:
    """``run`` (an ONNX model) taking and giving arrays in the ``.tflite`` model's layouts."""

    def in_tflite_layout(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        onnx_feeds = {
            t.name: np.ascontiguousarray(feeds[t.name].transpose(layout.invert(t.perm))) for t in model.inputs
        }
        out = run(onnx_feeds)
        return {t.name: out[t.name].transpose(t.perm) for t in model.outputs if t.name in out}

    return in_tflite_layout


def in_layout(data: Dataset, model: TFLiteModel) -> Dataset:
    """ONNX-layout data in the ``.tflite`` model's input layouts (golden inputs, drift reference)."""
    inputs = {t.name: np.ascontiguousarray(data.inputs[t.name].transpose(t.perm)) for t in model.inputs}
    return dataclasses.replace(data, inputs=inputs)


@dataclass(frozen=True)
class PackData:
    """Data files for golden inputs and the reference statistics."""

    calib: Path | None = None
    eval: Path | None = None
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: a compress output folder's variant to pack (``None``: its result)
    variant: str | None = None


def pack_source(source: str, out_dir: Path, options: pack.BundleOptions, data: PackData) -> Bundle:
    """Bundle ``source`` into ``out_dir``; returns the verified bundle."""
    options.check()
    model_input, label, converted = _model_input(source, data)
    specs = list(model_input.inputs)
    if converted is not None:  # a converted .tflite variant: the data is in the ONNX layout the user has
        specs = [TensorSpec(t.name, t.dtype, layout.apply(layout.invert(t.perm), t.shape)) for t in converted.inputs]
    datasets = [
        load_npz(path, specs, role=role)
        for path, role in ((data.eval, "evaluation"), (data.calib, "calibration"))
        if path is not None
    ]
    if converted is not None:
        datasets = [in_layout(d, converted) for d in datasets]
    return write_bundle(model_input, out_dir, options, datasets, label=label, fallback=_model_time(source))


def write_bundle(
    model_input: pack.PackInput,
    out_dir: Path,
    options: pack.BundleOptions,
    datasets: list[Dataset],
    *,
    label: str,
    fallback: datetime,
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = (),
) -> Bundle:
    """Build, write and check a bundle; ``datasets`` in order of preference for golden inputs."""
    name = options.name or name_from(label)
    real = [d for d in datasets if not d.synthetic]
    probe = real[0] if real else synthesize(model_input.inputs, shapes=dict(input_shapes))
    reference_data = next((d for d in reversed(real)), None)  # calibration data when given
    members = pack.build(
        model_input,
        name=name,
        options=options,
        golden_inputs=golden.golden_inputs(probe, model_input.inputs),
        reference_data=reference_data,
        created=pack.created_time(options, fallback),
    )
    path = pack.write(members, pack.bundle_path(out_dir, name, options.version))
    try:
        return pack.check_written(path, model_input.run, signing_key=options.signing_key)
    except BaseException:
        path.unlink(missing_ok=True)  # a bundle no device would take is not left to be shipped
        raise


def _model_input(source: str, data: PackData) -> tuple[pack.PackInput, str, TFLiteModel | None]:
    """The model to pack, its label, and the converted ``.tflite`` model when that is what it is."""
    folder = Path(source)
    if folder.is_dir() and (folder / COMPRESS_REPORT).is_file():
        model_input, converted = _from_compress_output(folder, data.variant)
        return model_input, folder.name, converted
    if data.variant is not None:
        raise ConfigError(f"--variant picks a model in a compress output folder, and '{source}' is not one: drop it")
    imported = import_model(source, ImportOptions(input_shapes=data.input_shapes))
    origin = {"kind": imported.kind, "file": Path(source.split(":", 1)[0]).name}
    if imported.tflite is not None:
        return tflite_input(imported.tflite, source=origin), source, None
    return onnx_input(imported.require_onnx(), source=origin, imported=imported), source, None


def _from_compress_output(folder: Path, variant: str | None) -> tuple[pack.PackInput, TFLiteModel | None]:
    """The result of a compress run (``report.json``'s ``chosen``), or the written variant named ``variant``."""
    from edgekit.model_io import load_model

    try:
        report = json.loads((folder / COMPRESS_REPORT).read_text(encoding="utf-8"))
        original_source = str(report["source"])
        written = {v["name"]: v for v in report["variants"] if v.get("file")}
        name = variant or str(report["chosen"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"'{folder / COMPRESS_REPORT}' is not an edgekit compress report: compress again") from exc
    entry = written.get(name, {"file": COMPRESS_MODEL} if variant is None else None)
    if entry is None:
        choices = ", ".join(written) or "none"
        raise ConfigError(f"--variant {name} was not written to '{folder}' (written: {choices}): pick one of those")
    original = None
    if Path(original_source.split(":", 1)[0]).exists():  # widens golden tolerances by the compression error
        original = import_model(original_source).model
    origin = {"kind": "compressed", "file": Path(original_source.split(":", 1)[0]).name}
    path = folder / str(entry["file"])
    if path.suffix == ".tflite":
        converted = _converted_from_report(path, entry)
        report = report | {"chosen": name}
        return converted_tflite_input(converted, source=origin, original=original, report=report), converted
    model = load_model(path).model
    return onnx_input(model, source=origin, original=original, report=report | {"chosen": name}), None


def _converted_from_report(path: Path, entry: dict[str, Any]) -> TFLiteModel:
    from edgekit.tflite import TFLiteModel

    step = next((p for p in entry.get("passes", []) if p.get("name") == "tflite"), None)
    if step is None or "layouts" not in step.get("details", {}):
        raise ModelError(f"report.json does not say the layouts of '{path.name}': compress again")
    return TFLiteModel.from_layouts(path.read_bytes(), step["config"]["variant"], step["details"]["layouts"])


def _model_time(source: str) -> datetime:
    """When the model was made: its file's modification time (the same file gives the same bundle)."""
    path = Path(source.split(":", 1)[0])
    if path.is_dir() and (path / COMPRESS_MODEL).is_file():
        path = path / COMPRESS_MODEL
    elif path.is_dir() and (path / "MLmodel").is_file():
        path = path / "MLmodel"
    stamp = path.stat().st_mtime if path.exists() else datetime.now(timezone.utc).timestamp()
    return datetime.fromtimestamp(stamp, tz=timezone.utc)
