"""``.tflite`` models travel as they are: edgekit checks the file and reads its signature, nothing more.

Reading the inputs and outputs and computing golden outputs runs the model in the runtime's own LiteRT
backend (:mod:`edgekit_runtime.backends.litert`), so the host runs it exactly as a device will; that needs
LiteRT on the host (``pip install 'edgekit[litert]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import MissingBackendError, MissingExtraError, ModelError
from edgekit.graph_stats import TensorSpec
from edgekit.importers.base import Imported
from edgekit_runtime.backends import BackendSettings

if TYPE_CHECKING:
    from edgekit.importers.base import ImportOptions
    from edgekit_runtime.backends.litert import LiteRtBackend

#: a TFLite FlatBuffer carries this file identifier at bytes 4..8
TFLITE_MAGIC = b"TFL3"


def import_tflite(source: str, options: ImportOptions) -> Imported:  # noqa: ARG001  (the importer signature)
    """Read a ``.tflite`` file and check that it is one that LiteRT loads."""
    path = Path(source)
    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist: check the path", path=path)
    data = path.read_bytes()
    if data[4:8] != TFLITE_MAGIC:
        raise ModelError(f"'{path}' is not a TFLite model (no TFL3 identifier): pass a .tflite FlatBuffer", path=path)
    open_tflite(data, label=str(path))  # fails now, with a clear message, if LiteRT cannot load it
    return Imported("tflite", source, tflite=data, notes=("TFLite models are packed as is, without compression",))


def open_tflite(data: bytes, *, label: str = "the .tflite model") -> LiteRtBackend:
    """The runtime's LiteRT backend for ``data``, one thread (the same answers every time)."""
    from edgekit_runtime.backends import litert

    try:
        return litert.open_model(data, BackendSettings(threads=1))
    except MissingBackendError as exc:
        raise MissingExtraError("packing .tflite models", "litert", "ai-edge-litert") from exc
    except ModelError as exc:  # the runtime's, named after the file
        raise ModelError(f"{label}: {exc}") from exc


def host_specs(backend: LiteRtBackend) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs as the host toolkit's specs; dynamic dimensions (``-1`` in the signature) are ``None``."""
    return (
        [TensorSpec(s.name, s.dtype, s.shape) for s in backend.inputs],
        [TensorSpec(s.name, s.dtype, s.shape) for s in backend.outputs],
    )
