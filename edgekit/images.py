"""Calibration from a folder of images, with a declared preprocessing.

The preprocessing is written as ``key=value`` pairs separated by ``;``, for example
``"scale=1/255;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;color=rgb"``. Whatever is not
given is read off the model's input: size from its fixed height and width, layout (NCHW or
NHWC) from where the channel axis of 1 or 3 is, colour from the channel count. The same
declaration goes into the bundle's manifest so the device prepares inputs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgekit.data import Dataset
from edgekit.errors import ConfigError, DataError, MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit.graph_stats import TensorSpec

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
Layout = Literal["nchw", "nhwc"]
Color = Literal["rgb", "bgr", "gray"]
_CHANNELS = {1, 3}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input: ``((pixels * scale) - mean) / std`` in the model's layout."""

    size: tuple[int, int] | None = None  # (height, width); None: from the model input
    layout: Layout | None = None
    color: Color | None = None
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def to_json(self) -> dict[str, object]:
        """Serialisable form (also what a bundle manifest records)."""
        return {
            "size": None if self.size is None else list(self.size),
            "layout": self.layout,
            "color": self.color,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def _floats(key: str, value: str) -> tuple[float, ...]:
    try:
        return tuple(float(Fraction(v.strip())) for v in value.split(","))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--preprocess {key}='{value}' is not a list of numbers: write {key}=0.5,0.5,0.5") from None


def parse_preprocess(text: str) -> Preprocess:
    """Parse ``"scale=1/255;mean=0.5;std=0.5;size=224x224;layout=nchw;color=rgb"``."""
    fields: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--preprocess item '{part}' has no '=': write key=value, separated by ';'")
        if key == "scale":
            fields["scale"] = _floats(key, value)[0]
        elif key in {"mean", "std"}:
            fields[key] = _floats(key, value)
        elif key == "size":
            h, _, w = value.lower().partition("x")
            if not (h.isdigit() and w.isdigit()):
                raise ConfigError(f"--preprocess size='{value}' is not HEIGHTxWIDTH: write size=224x224")
            fields["size"] = (int(h), int(w))
        elif key == "layout" and value in {"nchw", "nhwc"}:
            fields["layout"] = value
        elif key == "color" and value in {"rgb", "bgr", "gray"}:
            fields["color"] = value
        else:
            raise ConfigError(
                f"--preprocess item '{part}' is unknown: "
                "use scale, mean, std, size=HxW, layout=nchw|nhwc, color=rgb|bgr|gray"
            )
    if any(s == 0 for s in fields.get("std", (1.0,))):  # type: ignore[attr-defined]
        raise ConfigError("--preprocess std has a zero: every std must be non-zero")
    return Preprocess(**fields)  # type: ignore[arg-type]


def resolve(pre: Preprocess, spec: TensorSpec) -> tuple[tuple[int, int], Layout, Color]:
    """Fill what the declaration leaves open from the model's input spec."""
    shape = spec.shape
    if shape is None or len(shape) != 4:  # noqa: PLR2004
        raise DataError(f"input '{spec.name}' has shape {spec.shape_text()}: image calibration needs a 4-D input")
    layout: Layout | None = pre.layout
    if layout is None:
        layout = "nchw" if shape[1] in _CHANNELS else "nhwc" if shape[3] in _CHANNELS else None
    if layout is None:
        raise DataError(f"cannot tell the channel axis of {spec.shape_text()}: add layout=nchw or layout=nhwc")
    h, w, c = (shape[2], shape[3], shape[1]) if layout == "nchw" else (shape[1], shape[2], shape[3])
    size = pre.size
    if size is None:
        if not (isinstance(h, int) and isinstance(w, int)):
            raise DataError(
                f"input '{spec.name}' has free height/width {spec.shape_text()}: add size=HxW to --preprocess"
            )
        size = (h, w)
    color: Color = pre.color or ("gray" if c == 1 else "rgb")
    return size, layout, color


def load_folder(folder: Path, specs: Sequence[TensorSpec], pre: Preprocess | None = None, limit: int = 256) -> Dataset:
    """Read up to ``limit`` images from ``folder`` (sorted by name) as inputs of a one-input model."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingExtraError("calibration from an image folder", "images", "Pillow") from exc
    pre = pre or Preprocess()
    if len(specs) != 1:
        raise DataError(f"the model has {len(specs)} inputs: image folders calibrate one-input models; use an .npz")
    spec = specs[0]
    (height, width), layout, color = resolve(pre, spec)
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in '{folder}': add some or pass an .npz")
    arrays = []
    for path in files:
        try:
            with Image.open(path) as img:
                pixels: np.ndarray = np.asarray(
                    img.convert("L" if color == "gray" else "RGB").resize((width, height)), np.float32
                )
        except OSError as exc:
            raise DataError(f"image '{path}' cannot be read ({exc}): remove it or fix it", path=path) from exc
        if color == "gray":
            pixels = pixels[..., None]
        elif color == "bgr":
            pixels = pixels[..., ::-1]
        pixels = (pixels * pre.scale - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        arrays.append(pixels.transpose(2, 0, 1) if layout == "nchw" else pixels)
    batch = np.stack(arrays).astype(np.float32)
    return Dataset({spec.name: batch}, None, f"{folder} ({len(files)} images)")
