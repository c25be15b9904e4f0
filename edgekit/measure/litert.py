"""Running a converted ``.tflite`` model in LiteRT the way a device does: the runtime's own backend.

:class:`LiteRtRunner` wraps :mod:`edgekit_runtime.backends.litert` (XNNPACK, ``threads`` threads)
and the layouts the writer reports (:class:`edgekit.tflite.TensorLayout`): :meth:`~LiteRtRunner.run`
takes feeds already in the model's layout (what latency is timed on), :meth:`~LiteRtRunner.run_onnx`
takes and gives ONNX-layout arrays, cutting a batch into the model's static batch size, so its
outputs compare directly with ONNX Runtime's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import MissingBackendError, MissingExtraError, ModelError
from edgekit.tflite.layout import invert
from edgekit_runtime.backends import BackendSettings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from edgekit.tflite import TensorLayout, TFLiteModel


def require_litert(feature: str) -> None:
    """Raise :class:`MissingExtraError` now when LiteRT is not installed (before any work)."""
    import importlib.util

    if importlib.util.find_spec("ai_edge_litert") is None and importlib.util.find_spec("tflite_runtime") is None:
        raise MissingExtraError(feature, "litert", "ai-edge-litert")


class LiteRtRunner:
    """A converted model in the runtime's LiteRT backend, with its layouts."""

    def __init__(self, model: TFLiteModel, *, threads: int = 1, label: str = "TFLite model") -> None:
        """Load ``model.data``; LiteRT's load errors become :class:`ModelError`."""
        from edgekit_runtime.backends import litert

        try:
            self.backend = litert.open_model(model.data, BackendSettings(threads=threads))
        except MissingBackendError as exc:
            raise MissingExtraError("measuring TFLite variants", "litert", "ai-edge-litert") from exc
        except ModelError as exc:  # the runtime's, named after the variant
            raise ModelError(f"the {label}: {exc}") from exc
        self.model = model
        self.label = label
        self.output_names = [t.name for t in model.outputs]
        # the batch the model was written for: TFLite axis 0 is the ONNX batch axis in every layout here
        self.batch = model.inputs[0].shape[0] if model.inputs and model.inputs[0].shape else 1

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One call on feeds in the model's own layout; outputs in the model's layout and order."""
        try:
            out = self.backend.run(feeds)
        except ModelError as exc:
            raise ModelError(f"the {self.label}: {exc}") from exc
        return [out[name] for name in self.output_names]

    def model_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """ONNX-layout arrays in the model's layout and input types (quantized for int8 inputs)."""
        out = {}
        for t in self.model.inputs:
            value = np.asarray(feeds[t.name]).transpose(t.perm)
            if t.scale is not None and t.zero_point is not None:
                value = np.clip(np.round(value / t.scale) + t.zero_point, -128, 127)
            out[t.name] = np.ascontiguousarray(value, dtype=t.dtype)
        return out

    def run_onnx(self, batches: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
        """Run ONNX-layout batches, ``self.batch`` samples per call; outputs in ONNX layout, joined along axis 0.

        A last slice shorter than the model's batch is filled up with its first sample, and cut off again.
        """
        parts: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for batch in batches:
            total = len(next(iter(batch.values())))
            for start in range(0, total, self.batch):
                chunk = {k: v[start : start + self.batch] for k, v in batch.items()}
                short = self.batch - len(next(iter(chunk.values())))
                if short:
                    chunk = {k: np.concatenate([v, np.repeat(v[:1], short, axis=0)]) for k, v in chunk.items()}
                outputs = self.run(self.model_feeds(chunk))
                for i, (value, layout) in enumerate(zip(outputs, self.model.outputs, strict=True)):
                    parts[i].append(_as_onnx(value, layout)[: self.batch - short])
        return [np.concatenate(p) for p in parts]


def _as_onnx(value: np.ndarray, layout: TensorLayout) -> np.ndarray:
    """An output back in its ONNX layout (and in float, when the model gives int8)."""
    if layout.scale is not None and layout.zero_point is not None:
        value = (value.astype(np.float32) - layout.zero_point) * np.float32(layout.scale)
    return np.asarray(value.transpose(invert(layout.perm)))
