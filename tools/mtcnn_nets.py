"""MTCNN's R-Net and O-Net, as facenet-pytorch 2.6.0 defines them, to load its pretrained weights.

The weights (``rnet.pt``, ``onet.pt``: PyTorch state dicts) come out of the ``facenet-pytorch==2.6.0``
wheel through ``tools/fetch_models.py``, which caches them and exports each net to ONNX with edgekit's
own PyTorch importer (``tools/mtcnn_nets.py:rnet`` and ``:onet`` are factories it can call).
facenet-pytorch itself is not a dependency: it pins old torch, numpy and Pillow.

The two classes below follow ``facenet_pytorch/models/mtcnn.py`` (layer names must match the state
dicts), under its MIT licence::

    MIT License

    Copyright (c) 2019 Timothy Esler

    Permission is hereby granted, free of charge, to any person obtaining a copy
    of this software and associated documentation files (the "Software"), to deal
    in the Software without restriction, including without limitation the rights
    to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
    copies of the Software, and to permit persons to whom the Software is
    furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
    FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
    AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
    LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
    OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
    SOFTWARE.

Inputs are RGB crops, ``[N, 3, 24, 24]`` for R-Net and ``[N, 3, 48, 48]`` for O-Net, scaled as MTCNN
does: ``(pixel - 127.5) / 128``. Outputs (edgekit's importer names them ``output_0``, ...): R-Net gives
box offsets ``[N, 4]`` and face probabilities ``[N, 2]`` (column 1: a face); O-Net gives box offsets
``[N, 4]``, five landmarks ``[N, 10]`` and face probabilities ``[N, 2]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

#: the input each net takes, batch axis first
INPUT_SHAPES = {"rnet": (1, 3, 24, 24), "onet": (1, 3, 48, 48)}
#: the face-probability output of each net, as edgekit's importer names it
PROBABILITY_OUTPUT = {"rnet": "output_1", "onet": "output_2"}
#: where the factories read the weights: the folder ``tools/fetch_models.py`` caches them in
ENV_WEIGHTS = "EDGEKIT_MTCNN_WEIGHTS"


class RNet(nn.Module):
    """MTCNN's refinement network: 24x24 crops to box offsets and face probabilities."""

    def __init__(self) -> None:
        """The layers, named as in the state dict."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box offsets and face probabilities."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    """MTCNN's output network: 48x48 crops to box offsets, landmarks and face probabilities."""

    def __init__(self) -> None:
        """The layers, named as in the state dict."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Box offsets, landmarks and face probabilities."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def load(name: str, weights: Path) -> nn.Module:
    """``rnet`` or ``onet`` with the state dict in ``weights`` (a ``.pt`` file), in eval mode."""
    net: nn.Module = {"rnet": RNet, "onet": ONet}[name]()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def _weights(name: str) -> Path:
    """``$EDGEKIT_MTCNN_WEIGHTS/NAME.pt``, else the file ``tools/fetch_models.py NAME`` cached."""
    folder = os.environ.get(ENV_WEIGHTS)
    if folder:
        return Path(folder) / f"{name}.pt"
    tools = str(Path(__file__).resolve().parent)
    if tools not in sys.path:  # edgekit's importer loads this file by path: its neighbours are not importable yet
        sys.path.insert(0, tools)
    import fetch_models

    path: Path = fetch_models.default_cache() / fetch_models.MODELS[name].filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run python tools/fetch_models.py {name}")
    return path


def rnet() -> nn.Module:
    """R-Net with its pretrained weights (for ``edgekit compress tools/mtcnn_nets.py:rnet``)."""
    return load("rnet", _weights("rnet"))


def onet() -> nn.Module:
    """O-Net with its pretrained weights (for ``edgekit compress tools/mtcnn_nets.py:onet``)."""
    return load("onet", _weights("onet"))
