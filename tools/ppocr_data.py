"""Inputs for the PP-OCR models, made from text rendered with Pillow's built-in font.

No dataset download: phrases of everyday words and numbers are drawn in dark ink on light paper
with a little noise, then normalised the PP-OCR way (``(x / 255 - 0.5) / 0.5``, CHW). Pages feed
the detector, tightly cropped lines the classifier (half of them turned 180°, with labels) and the
recogniser (height 48, width up to 320, zero-padded on the right, as RapidOCR does).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from edgekit.graph_stats import graph_inputs

if TYPE_CHECKING:
    from PIL import Image as PILImage

_WORDS = (
    "edge", "model", "device", "sensor", "invoice", "total", "amount", "date", "order", "number", "street",
    "quantize", "battery", "voltage", "meter", "reading", "serial", "station", "north", "south", "price",
    "ticket", "receipt", "Berlin", "Paris", "Lagos", "Osaka", "Lima", "OCR", "INT8", "kWh", "No.", "ID",
)  # fmt: skip


def _phrase(rng: np.random.Generator) -> str:
    words = [str(rng.choice(_WORDS)) for _ in range(int(rng.integers(1, 5)))]
    if rng.random() < 0.5:  # noqa: PLR2004
        words.insert(int(rng.integers(0, len(words) + 1)), str(int(rng.integers(1, 99999))))
    return " ".join(words)


def _ink(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 90, 3))
    return r, g, b


def _paper(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(205, 256, 3))
    return r, g, b


def _ppocr_normalize(image: PILImage.Image) -> np.ndarray:
    """HWC uint8 RGB → CHW float32 in [-1, 1]: ``(x / 255 - 0.5) / 0.5``."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(((pixels / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))


def _with_noise(image: PILImage.Image, rng: np.random.Generator) -> PILImage.Image:
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 4.0, (image.height, image.width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def render_page(rng: np.random.Generator, size: int) -> PILImage.Image:
    """A light page with several lines of dark text in varied sizes: the detector's input."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", (size, size), _paper(rng))
    draw = ImageDraw.Draw(page)
    y = int(rng.integers(4, 24))
    while True:
        font_size = int(rng.integers(12, 30))
        if y + font_size > size - 4:
            break
        font = ImageFont.load_default(size=font_size)
        draw.text((int(rng.integers(4, size // 4)), y), _phrase(rng), fill=_ink(rng), font=font)
        y += font_size + int(rng.integers(4, 20))
    return _with_noise(page, rng)


def render_line(rng: np.random.Generator) -> PILImage.Image:
    """One tightly cropped line of text, as the detector would hand it to the classifier."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=int(rng.integers(20, 40)))
    text = _phrase(rng)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    pad = int(rng.integers(2, 8))
    line = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), _paper(rng))
    ImageDraw.Draw(line).text((pad - left, pad - top), text, fill=_ink(rng), font=font)
    return _with_noise(line, rng)


def cls_input(line: PILImage.Image, height: int = 48, width: int = 192) -> np.ndarray:
    """PP-OCR's classifier preprocessing: height 48, aspect kept (width at most 192), zero padding right."""
    from PIL import Image

    resized_w = min(width, math.ceil(height * line.width / line.height))
    chw = _ppocr_normalize(line.resize((resized_w, height), Image.Resampling.BILINEAR))
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = chw
    return out


def det_data(rng: np.random.Generator, samples: int, size: int) -> dict[str, np.ndarray]:
    """Rendered pages, normalised."""
    return {"inputs": np.stack([_ppocr_normalize(render_page(rng, size)) for _ in range(samples)])}


def cls_data(rng: np.random.Generator, samples: int) -> dict[str, np.ndarray]:
    """Rendered text lines, every other one turned 180° (label 1, PP-OCR's ``'180'`` class)."""
    from PIL import Image

    labels = np.arange(samples) % 2
    lines = [render_line(rng) for _ in range(samples)]
    lines = [ln.transpose(Image.Transpose.ROTATE_180) if lab else ln for ln, lab in zip(lines, labels, strict=True)]
    return {"inputs": np.stack([cls_input(ln) for ln in lines]), "label": labels.astype(np.int64)}


def rec_input(line: PILImage.Image, height: int = 48, width: int = 320) -> np.ndarray:
    """PP-OCRv4 recogniser preprocessing: height 48, aspect kept (width at most 320), zero padding right."""
    return cls_input(line, height, width)


def rec_data(rng: np.random.Generator, samples: int) -> dict[str, np.ndarray]:
    """Rendered text lines for the recogniser (no labels: judged by agreement with FP32)."""
    return {"inputs": np.stack([rec_input(render_line(rng)) for _ in range(samples)])}


def save_npz(path: Path, model: Path, data: dict[str, np.ndarray]) -> Path:
    """Save ``data["inputs"]`` under the model's input name (and ``label`` if present)."""
    (spec,) = graph_inputs(onnx.load(str(model), load_external_data=False))
    arrays = {spec.name: data["inputs"]} | ({"label": data["label"]} if "label" in data else {})
    # numpy's stub lets **kwds collide with allow_pickle: bool
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return Path(path)
