"""``.tflite`` models travel as they are: edgekit checks the file and reads its signature, nothing more.

Reading the inputs and outputs and computing golden outputs needs LiteRT on the host
(``pip install 'edgekit[litert]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import MissingExtraError, ModelError
from edgekit.graph_stats import Dim, TensorSpec
from edgekit.importers import Imported

if TYPE_CHECKING:
    from edgekit.importers import ImportOptions

#: a TFLite FlatBuffer carries this file identifier at bytes 4..8
TFLITE_MAGIC = b"TFL3"


def import_tflite(source: str, options: ImportOptions) -> Imported:  # noqa: ARG001  (the importer signature)
    """Read a ``.tflite`` file and check that it is one."""
    path = Path(source)
    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist: check the path", path=path)
    data = path.read_bytes()
    if data[4:8] != TFLITE_MAGIC:
        raise ModelError(f"'{path}' is not a TFLite model (no TFL3 identifier): pass a .tflite FlatBuffer", path=path)
    interpreter(data, label=str(path))  # fails now, with a clear message, if LiteRT cannot load it
    return Imported("tflite", source, tflite=data, notes=("TFLite models are packed as is, without compression",))


def interpreter(data: bytes, *, label: str = "the .tflite model", threads: int = 1) -> Any:  # noqa: ANN401
    """A LiteRT interpreter for ``data``, tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError as exc:
        raise MissingExtraError("packing .tflite models", "litert", "ai-edge-litert") from exc
    try:
        found = Interpreter(model_content=data, num_threads=threads)
        found.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"LiteRT cannot load {label} ({first}): check the file and the ops it uses") from exc
    return found


def tflite_specs(data: bytes) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a ``.tflite`` model; dynamic dimensions (``-1`` in the signature) are ``None``."""
    found = interpreter(data)
    return _specs(found.get_input_details()), _specs(found.get_output_details())


def _specs(details: list[dict[str, Any]]) -> list[TensorSpec]:
    specs = []
    for d in details:
        dims: tuple[Dim, ...] = tuple(None if int(v) < 0 else int(v) for v in d.get("shape_signature", d["shape"]))
        specs.append(TensorSpec(str(d["name"]), np.dtype(d["dtype"]).name, dims))
    return specs


def run_tflite(data: bytes) -> Any:  # noqa: ANN401
    """A function running feeds (by input name) through LiteRT, returning outputs by name."""
    found = interpreter(data)
    inputs, outputs = found.get_input_details(), found.get_output_details()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for d in inputs:
            value = np.asarray(feeds[d["name"]], dtype=d["dtype"])
            if tuple(value.shape) != tuple(d["shape"]):
                found.resize_tensor_input(d["index"], value.shape)
                found.allocate_tensors()
            found.set_tensor(d["index"], value)
        found.invoke()
        return {str(d["name"]): np.array(found.get_tensor(d["index"])) for d in outputs}

    return run
