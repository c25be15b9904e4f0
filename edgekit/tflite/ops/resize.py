"""``Resize`` (nearest and bilinear) → ``RESIZE_NEAREST_NEIGHBOR`` / ``RESIZE_BILINEAR``.

ONNX describes the sampling with a coordinate transformation and a rounding mode; TFLite with two
flags, ``align_corners`` and ``half_pixel_centers``. Rather than a table of which combinations
agree (they agree for some scales and not for others), the writer computes, for the model's actual
sizes, the source pixel ONNX reads for every output pixel and the one each TFLite mode reads, and
picks the mode that matches exactly. A Resize that no mode matches is refused before anything is
written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite.context import attrs
from edgekit.tflite.graph import Options
from edgekit.tflite.ops.conv import NHWC

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

#: TFLite's (align_corners, half_pixel_centers) choices
_MODES = ((False, False), (False, True), (True, False))
_RANK = 4
_OPSET_WITH_MODES = 11
_TOLERANCE = 1e-4  # in source pixels: TFLite computes its coordinates in float32


def _text(value: object, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _onnx_coordinates(mode: str, out: np.ndarray, in_size: int, out_size: int, scale: float) -> np.ndarray:
    if mode == "align_corners":
        return out * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(out)
    if mode == "asymmetric":
        return out / scale
    if mode == "pytorch_half_pixel":
        return (out + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(out)
    if mode == "tf_half_pixel_for_nn":
        return (out + 0.5) / scale
    return (out + 0.5) / scale - 0.5  # half_pixel


def _onnx_nearest(x: np.ndarray, rounding: str) -> np.ndarray:
    down: np.ndarray = np.floor(x)
    up: np.ndarray = np.ceil(x)
    nearest: np.ndarray = np.floor(x + 0.5)
    choices = {"floor": down, "ceil": up, "round_prefer_ceil": nearest}
    tie = np.isclose(x - down, 0.5)
    return choices.get(rounding, np.where(tie, down, nearest))  # round_prefer_floor by default


def _tflite_coordinates(align: bool, half: bool, out: np.ndarray, in_size: int, out_size: int) -> np.ndarray:
    scale = (in_size - 1) / (out_size - 1) if align and out_size > 1 else in_size / out_size
    return (out + (0.5 if half else 0.0)) * scale


def _matches(node: onnx.NodeProto, prepared: Prepared, align: bool, half: bool) -> bool:
    a = attrs(node)
    nearest = _text(a.get("mode"), "nearest") == "nearest"
    default = "half_pixel" if prepared.opset >= _OPSET_WITH_MODES else "asymmetric"
    coords_mode = _text(a.get("coordinate_transformation_mode"), default)
    rounding = _text(a.get("nearest_mode"), "round_prefer_floor" if prepared.opset >= _OPSET_WITH_MODES else "floor")
    in_shape, out_shape = prepared.shapes[node.input[0]], prepared.shapes[node.output[0]]
    scales = _scales(node, prepared)
    for axis in (2, 3):
        n_in, n_out = in_shape[axis], out_shape[axis]
        out = np.arange(n_out, dtype=np.float64)
        scale = scales[axis] if scales is not None else n_out / n_in
        onnx_x = _onnx_coordinates(coords_mode, out, n_in, n_out, scale)
        tfl_x = _tflite_coordinates(align, half, out, n_in, n_out)
        if nearest:
            want = np.clip(_onnx_nearest(onnx_x, rounding), 0, n_in - 1)
            got = np.floor(tfl_x + 0.5) if align else np.floor(tfl_x)  # TfLiteRound: half away from zero
            got = np.clip(got, 0, n_in - 1)
            if not np.array_equal(want, got):
                return False
        else:
            got = np.clip(tfl_x - (0.5 if half else 0.0), 0, n_in - 1)
            if not np.allclose(np.clip(onnx_x, 0, n_in - 1), got, atol=_TOLERANCE):
                return False
    return True


def _scales(node: onnx.NodeProto, prepared: Prepared) -> np.ndarray | None:
    index = 1 if prepared.opset < _OPSET_WITH_MODES else 2
    name = node.input[index] if len(node.input) > index else ""
    if name and name in prepared.constants and prepared.constants[name].size:
        return prepared.constants[name].astype(np.float64)
    return None


def tflite_mode(node: onnx.NodeProto, prepared: Prepared) -> tuple[bool, bool] | None:
    """TFLite's ``(align_corners, half_pixel_centers)`` that samples as the node does, or ``None``."""
    return next((m for m in _MODES if _matches(node, prepared, *m)), None)


def check_resize(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """4-D, spatial axes only, nearest or linear, and a TFLite mode that samples the same pixels."""
    a = attrs(node)
    mode = _text(a.get("mode"), "nearest")
    in_shape, out_shape = prepared.shapes[node.input[0]], prepared.shapes[node.output[0]]
    if mode not in ("nearest", "linear"):
        return f"Resize mode '{mode}'"
    if len(in_shape) != _RANK or in_shape[:2] != out_shape[:2]:
        return "Resize of other than the two spatial axes of a 4-D tensor"
    if a.get("antialias", 0) or _text(a.get("coordinate_transformation_mode"), "") == "tf_crop_and_resize":
        return "Resize with antialias or tf_crop_and_resize"
    if tflite_mode(node, prepared) is None:
        coords = _text(a.get("coordinate_transformation_mode"), "half_pixel")
        return f"Resize ({mode}, {coords}, {_text(a.get('nearest_mode'), 'round_prefer_floor')}) at these sizes"
    return None


def resize(node: onnx.NodeProto, ctx: Context) -> None:
    """Resize in NHWC with the matching TFLite mode."""
    found = tflite_mode(node, ctx.prepared)
    if found is None:  # refused by check_resize
        return
    align, half = found
    nearest = _text(attrs(node).get("mode"), "nearest") == "nearest"
    opcode, table = (
        ("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions")
        if nearest
        else ("RESIZE_BILINEAR", "ResizeBilinearOptions")
    )
    size = ctx.ints(ctx.shape(node.output[0])[2:], f"{node.name}_size")
    options = Options(table, {"AlignCorners": align, "HalfPixelCenters": half})
    ctx.emit(opcode, [ctx.tensor(node.input[0], NHWC), size], node.output[0], NHWC, options)
