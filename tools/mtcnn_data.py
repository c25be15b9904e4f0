"""Face and non-face crops for MTCNN's R-Net and O-Net, from data that ships inside PyPI wheels.

Faces: scikit-image's ``lfw_subset`` (100 grey 25x25 faces from Labeled Faces in the Wild, then 100
non-face patches), cached out of the ``scikit-image`` wheel by ``tools/fetch_models.py lfw``. Non-faces
besides those: random crops of scikit-learn's two sample photos (``load_sample_images``: a temple and a
flower, no faces). Each crop is jittered (shifted, scaled, mirrored, its brightness changed) so that the
same 200 patches give as many inputs as asked for, resized to the net's input with Pillow, made RGB,
and scaled the MTCNN way: ``(pixel - 127.5) / 128``, CHW.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

#: LFW subset: the first 100 patches are faces, the last 100 are not
_FACES = 100
_PIXELS = 255.0


def _resized(patch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A jittered crop of ``patch`` (HxW or HxWx3, values 0..255) resized to ``size`` x ``size`` x 3."""
    from PIL import Image

    h, w = patch.shape[:2]
    scale = rng.uniform(0.85, 1.0)
    ch, cw = max(2, round(h * scale)), max(2, round(w * scale))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = np.clip(patch[top : top + ch, left : left + cw] * rng.uniform(0.8, 1.2), 0, _PIXELS).astype(np.uint8)
    image = Image.fromarray(crop).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[:, ::-1] if rng.random() < 0.5 else pixels  # noqa: PLR2004


def crops(lfw: Path, size: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` crops ``[count, 3, size, size]`` (float32, MTCNN scaling) and whether each is a face.

    About a third are LFW faces, a third LFW non-faces and a third pieces of the sample photos.
    """
    from sklearn.datasets import load_sample_images

    patches = np.load(lfw) * _PIXELS
    photos = [np.asarray(image, dtype=np.float32) for image in load_sample_images().images]
    out = np.empty((count, 3, size, size), np.float32)
    faces = np.zeros(count, bool)
    for i in range(count):
        kind = i % 3
        if kind == 2:  # noqa: PLR2004  (a piece of a photo)
            photo = photos[int(rng.integers(0, len(photos)))]
            side = int(rng.integers(24, 160))
            top = int(rng.integers(0, photo.shape[0] - side))
            left = int(rng.integers(0, photo.shape[1] - side))
            patch = photo[top : top + side, left : left + side]
        else:
            index = int(rng.integers(0, _FACES)) + (0 if kind == 0 else _FACES)
            patch = patches[index]
            faces[i] = kind == 0
        out[i] = ((_resized(patch, size, rng) - 127.5) / 128.0).transpose(2, 0, 1)
    return out, faces
