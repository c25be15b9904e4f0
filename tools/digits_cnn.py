"""Small CNN for scikit-learn's 8x8 ``load_digits`` images.

The module is importable on its own (``tools/digits_cnn.py:build``) so that
importers can rebuild the architecture without running the training script.

Input: float32 tensor of shape ``[N, 1, 8, 8]`` holding pixel values scaled to
``[0, 1]`` (raw digits pixels ``0..16`` divided by ``16.0``).
Output: float32 logits of shape ``[N, 10]``.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

INPUT_SHAPE: Final[tuple[int, int, int, int]] = (1, 1, 8, 8)
"""Shape of one input sample including the batch axis (``[N, C, H, W]``, N=1)."""

NUM_CLASSES: Final[int] = 10
"""Number of output classes (digits 0-9)."""

PIXEL_SCALE: Final[float] = 16.0
"""Raw ``load_digits`` pixels (0..16) are divided by this value."""


def build() -> nn.Module:
    """Return a freshly initialised digits CNN (59,002 parameters).

    Architecture::

        Conv(1->32, 3x3, pad 1) + ReLU          8x8
        Conv(32->48, 3x3, pad 1) + ReLU         8x8
        MaxPool(2)                              4x4
        Conv(48->64, 3x3, pad 1) + ReLU         4x4
        MaxPool(2)                              2x2
        Flatten                                 256
        Linear(256->64) + ReLU
        Linear(64->10)                          logits

    The width is chosen so that weights dominate the ONNX file: a QDQ INT8
    model adds roughly 10-12 KB of fixed overhead (scales, zero points, int32
    biases, Q/DQ nodes), so about 60k parameters are needed for the INT8 file
    to stay under 30 % of the FP32 file (about 240 KB).
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 48, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(48, 64, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 64),
        nn.ReLU(),
        nn.Linear(64, NUM_CLASSES),
    )


if __name__ == "__main__":  # pragma: no cover - manual sanity check
    model = build()
    n_params = sum(p.numel() for p in model.parameters())
    out = model(torch.zeros(INPUT_SHAPE))
    print(f"parameters: {n_params}, output shape: {tuple(out.shape)}")
