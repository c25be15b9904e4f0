"""``edgekit bundle pack``: a bundle from a model file, any importer's source, or a compress output folder.

Data for the golden self-test and the drift reference: ``--eval`` and ``--calib`` ``.npz`` archives. The
reference statistics come from the calibration data when given (it is what the model should see), else the
evaluation data; golden inputs from the evaluation data first. Without either, golden inputs are random
and ``reference.json`` says drift detection has no reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.bundle import golden, pack
from edgekit.bundle.manifest import compression_summary, name_from
from edgekit.data import Dataset, load_npz, synthesize
from edgekit.errors import ModelError
from edgekit.graph_stats import graph_inputs, graph_outputs
from edgekit.importers import ImportOptions, import_model
from edgekit.measure.session import OrtRunner
from edgekit.model_io import model_bytes

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edgekit.importers import Imported
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
    from edgekit.importers.tflite import host_specs, open_tflite  # noqa: PLC0415

    backend = open_tflite(data)
    inputs, outputs = host_specs(backend)
    return pack.PackInput(backend="litert", data=data, inputs=inputs, outputs=outputs, run=backend.run, source=source)


@dataclass(frozen=True)
class PackData:
    """Data files for golden inputs and the reference statistics."""

    calib: Path | None = None
    eval: Path | None = None
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()


def pack_source(source: str, out_dir: Path, options: pack.BundleOptions, data: PackData) -> Bundle:
    """Bundle ``source`` into ``out_dir``; returns the verified bundle."""
    options.check()
    model_input, label = _model_input(source, data)
    datasets = [
        load_npz(path, model_input.inputs, role=role)
        for path, role in ((data.eval, "evaluation"), (data.calib, "calibration"))
        if path is not None
    ]
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
    return pack.check_written(path, model_input.run, signing_key=options.signing_key)


def _model_input(source: str, data: PackData) -> tuple[pack.PackInput, str]:
    folder = Path(source)
    if folder.is_dir() and (folder / COMPRESS_REPORT).is_file():
        return _from_compress_output(folder), folder.name
    imported = import_model(source, ImportOptions(input_shapes=data.input_shapes))
    origin = {"kind": imported.kind, "file": Path(source.split(":", 1)[0]).name}
    if imported.tflite is not None:
        return tflite_input(imported.tflite, source=origin), source
    return onnx_input(imported.require_onnx(), source=origin, imported=imported), source


def _from_compress_output(folder: Path) -> pack.PackInput:
    from edgekit.model_io import load_model  # noqa: PLC0415

    try:
        report = json.loads((folder / COMPRESS_REPORT).read_text(encoding="utf-8"))
        original_source = str(report["source"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"'{folder / COMPRESS_REPORT}' is not an edgekit compress report: compress again") from exc
    model = load_model(folder / COMPRESS_MODEL).model
    original = None
    if Path(original_source.split(":", 1)[0]).exists():  # widens golden tolerances by the compression error
        original = import_model(original_source).model
    origin = {"kind": "compressed", "file": Path(original_source.split(":", 1)[0]).name}
    return onnx_input(model, source=origin, original=original, report=report)


def _model_time(source: str) -> datetime:
    """When the model was made: its file's modification time (the same file gives the same bundle)."""
    path = Path(source.split(":", 1)[0])
    if path.is_dir() and (path / COMPRESS_MODEL).is_file():
        path = path / COMPRESS_MODEL
    elif path.is_dir() and (path / "MLmodel").is_file():
        path = path / "MLmodel"
    stamp = path.stat().st_mtime if path.exists() else datetime.now(timezone.utc).timestamp()
    return datetime.fromtimestamp(stamp, tz=timezone.utc)
