"""Reading and writing ONNX model files, with errors a user can act on.

This is the one place the host toolkit touches model files on disk: every other module takes
and returns :class:`onnx.ModelProto`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import ModelError

if TYPE_CHECKING:
    import onnx

#: protobuf cannot serialise a message over 2 GiB; past this size weights go to a side file.
PROTOBUF_LIMIT = 2**31 - 1
_EXTERNAL_THRESHOLD = 1_800_000_000


@dataclass(frozen=True)
class LoadedModel:
    """A model read from disk, with the files it came from."""

    model: onnx.ModelProto
    path: Path
    files: tuple[Path, ...]  # the .onnx file and any external data files; none for an imported model

    @property
    def file_bytes(self) -> int:
        """Size on disk, external data included (an imported model's serialised size)."""
        if not self.files:
            return int(self.model.ByteSize())
        return sum(f.stat().st_size for f in self.files)


def load_model(path: Path) -> LoadedModel:
    """Load an ONNX model with its external data, or raise a :class:`ModelError` that says why not."""
    import onnx  # lazy: keep the CLI's start-up light
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file '{path}' does not exist: check the path", path=path)
    if path.is_dir():
        raise ModelError(f"'{path}' is a directory: pass the .onnx file inside it", path=path)
    if path.stat().st_size == 0:
        raise ModelError(f"model file '{path}' is empty: re-export the model", path=path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        hint = _not_onnx_hint(path)
        raise ModelError(f"'{path}' is not a readable ONNX model ({hint})", path=path) from exc
    if not model.opset_import and model.graph.node:
        raise ModelError(f"'{path}' is not a readable ONNX model (it has no opset: truncated or corrupt)", path=path)
    if not model.graph.node and not model.graph.output:
        raise ModelError(
            f"'{path}' parsed as protobuf but holds no ONNX graph: pass an .onnx model file",
            path=path,
        )
    side_files = _check_external_data(model, path)
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except (OSError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"external data of '{path}' cannot be read ({exc}): re-export the model", path=path) from exc
    return LoadedModel(model, path, (path, *side_files))


def _not_onnx_hint(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".pkl", ".pickle", ".joblib", ".skops"}:
        return "it looks like a scikit-learn model: edgekit converts it, give it to edgekit compress or bundle pack"
    if suffix in {".pt", ".pth", ".pt2"}:
        return "it looks like a PyTorch file: give edgekit compress or bundle pack module.py:factory or a .pt2"
    if suffix == ".tflite":
        return "it is a TFLite model: edgekit bundle pack takes it as is"
    return "the protobuf is truncated or corrupt: re-export or re-download it"


def _check_external_data(model: onnx.ModelProto, path: Path) -> list[Path]:
    """Name the missing side file and the tensor that needs it, before onnx gives a vaguer error."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    found: list[Path] = []
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        target = (path.parent / location).resolve()
        if path.parent.resolve() not in target.parents:
            raise ModelError(
                f"initializer '{tensor.name}' points outside the model folder ('{location}'): "
                "re-save the model with its data beside it",
                path=path,
            )
        if not target.is_file():
            raise ModelError(
                f"external data file '{location}' for initializer '{tensor.name}' is missing: "
                f"keep it in the same folder as '{path.name}'",
                path=path,
            )
        if target not in found:
            found.append(target)
    return found


def save_model(model: onnx.ModelProto, path: Path) -> list[Path]:
    """Write a model atomically; weights go to a ``.data`` side file when protobuf cannot hold them.

    Returns every file written (the model, and the side file when there is one).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() > _EXTERNAL_THRESHOLD:
        # onnx moves the weights out of the proto it saves: save a copy, in a fresh folder (onnx appends to an
        # existing side file), then move both files into place
        data_name = path.name + ".data"
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            staged = Path(tmp) / path.name
            onnx.save_model(
                copy,
                str(staged),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_name,
                size_threshold=1024,
            )
            (Path(tmp) / data_name).replace(path.parent / data_name)
            staged.replace(path)
        return [path, path.parent / data_name]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return [path]


def model_bytes(model: onnx.ModelProto) -> bytes:
    """Serialise a model held in memory (it must fit in protobuf's 2 GiB)."""
    if model.ByteSize() > PROTOBUF_LIMIT:
        raise ModelError("model is larger than 2 GiB: save it with external data and pass the path")
    return bytes(model.SerializeToString())
