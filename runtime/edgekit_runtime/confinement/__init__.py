"""A model reaches nothing outside its bundle: refuse, before any engine sees them, models that point elsewhere.

ONNX Runtime and LiteRT both follow references out of the bytes they are given. A model loaded from memory has no
folder, so ONNX Runtime resolves a tensor's relative *external data* location against the process's working
directory (``/`` under systemd): a signed bundle could read any file the service can, and hand it back through
``/predict`` to whoever sends the right input, while its golden self-test passes. :func:`check_confined` reads the
model's bytes itself and refuses (:class:`~edgekit_runtime.errors.UnsafeModelError`), for ONNX:

- a tensor kept as external data (``data_location = EXTERNAL`` or any ``external_data`` entry) anywhere: graph
  initializers, sparse initializers, attribute tensors (a ``Constant``'s ``value``), the subgraphs of ``If``,
  ``Loop`` and ``Scan`` at any depth, model-local functions and training graphs;
- a node in an op domain ONNX Runtime does not have built in (it would need a custom-op library), unless the
  model defines that op as a local function, and ``com.microsoft`` ``PyOp`` (builds with language interop import
  the Python module it names);
- an ``EPContext`` node whose compiled engine is a file beside the model (``embed_mode`` other than 1);
- an ``ort_config`` metadata entry: session settings ONNX Runtime takes from the model when
  ``ORT_LOAD_CONFIG_FROM_MODEL=1``, profiling (a file written to the working directory) among them;
- an ORT-format (FlatBuffer) model, which this check cannot read.

For TFLite: a custom operator LiteRT does not register itself (custom-op and Flex delegate libraries), a
registered one without its options (LiteRT reads them unchecked at load: it crashes), a buffer or custom-options
block whose ``offset``/``size`` lies outside the file, and external weight files (``external_buffer_groups``).

Both readers are small and bounded: they walk the bytes without copying them (weights are skipped by their
length), follow ONNX messages at most :attr:`Limits.max_depth` deep and read at most :attr:`Limits.max_fields`
fields or tables. Bytes they
cannot read are refused too: a model this check cannot follow is not known to be confined. It needs neither the
``onnx`` nor the ``tflite`` package; the field numbers are those of ``onnx/onnx-ml.proto`` (ONNX 1.23) and
LiteRT's ``schema.fbs`` (ai-edge-litert 2.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit_runtime.confinement.common import Limits, Refusal
from edgekit_runtime.confinement.onnx_reader import ONNX_DOMAINS, check_onnx
from edgekit_runtime.confinement.tflite_reader import LITERT_CUSTOM_OPS, check_tflite
from edgekit_runtime.errors import UnsafeModelError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LITERT_CUSTOM_OPS", "ONNX_DOMAINS", "Limits", "check_confined"]

_READERS: dict[str, Callable[[bytes, Limits], None]] = {"onnxruntime": check_onnx, "litert": check_tflite}


def check_confined(data: bytes, backend: str, *, source: str, limits: Limits | None = None) -> None:
    """Refuse ``data`` (a model for ``backend``) if it can reach outside its own bytes; ``source`` names it."""
    reader = _READERS.get(backend)
    if reader is None:
        raise UnsafeModelError(
            f"model '{source}' is for backend '{backend}', which this runtime cannot check: update edgekit-runtime",
            source=source,
            reason="unknown-backend",
        )
    try:
        reader(data, limits or Limits())
    except Refusal as refusal:
        raise UnsafeModelError(
            f"model '{source}' {refusal.what}: {refusal.fix}", source=source, reason=refusal.reason
        ) from None
