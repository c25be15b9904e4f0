"""A small streaming Conv1d + LSTM classifier with explicit state, and sequence data where the state matters.

``python tools/lstm_model.py OUT_DIR`` (or :func:`build`) trains it for a few seconds on synthetic sequences
and writes:

- ``lstm.onnx``: inputs ``x`` (float32 ``[1, 1, 40]``, one frame of 40 features), ``h`` and ``c`` (float32
  ``[1, 1, 64]``, the state); outputs ``logits`` (``[1, 6]``), ``hn`` and ``cn`` (the next state). A device runs
  it one frame per call and feeds ``hn``/``cn`` back as ``h``/``c``: edgekit finds the pairs by name and shape;
- ``lstm_calib.npz`` and ``lstm_eval.npz`` in the sequence contract (docs/compress.md, "Stateful models"):
  ``x`` of shape ``[S, T, 1, 1, 40]``, S sequences of T steps; the state starts at zero.

The task: most frames are noise; now and then a frame carries one of five cue patterns. The class of every
frame is the last cue seen so far (0 before any), so it depends on frames several steps back: a model run
one frame at a time from a zero state cannot know it. The LSTM cell is written out (two ``Linear`` layers and
its gates) rather than ``nn.LSTM``, which exports to the ONNX ``LSTM`` op: onnxruntime's static INT8
quantizer leaves that op in float, and this model is here to show that calibrating along sequences, with
the state the model really carries, is what makes INT8 of a recurrence work.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    from torch import nn

FEATURES: Final = 40
HIDDEN: Final = 64
CLASSES: Final = 6
STEPS: Final = 16
CUE_RATE: Final = 0.2
OPSET: Final = 17


def sequences(count: int, *, seed: int, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """``count`` sequences: frames ``[count, steps, FEATURES]`` and the class of each frame ``[count, steps]``."""
    templates = np.random.default_rng(1234).standard_normal((CLASSES - 1, FEATURES)).astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = 0.5 * rng.standard_normal((count, steps, FEATURES)).astype(np.float32)
    labels = np.zeros((count, steps), dtype=np.int64)
    for s in range(count):
        last = 0
        for t in range(steps):
            if rng.random() < CUE_RATE:
                last = int(rng.integers(1, CLASSES))
                frames[s, t] += templates[last - 1]
            labels[s, t] = last
    return frames, labels


def network() -> nn.Module:
    """The model (a ``torch.nn.Module``): ``forward(x [B, 1, 40], h [1, B, 64], c [1, B, 64]) -> logits, hn, cn``."""
    import torch
    from torch import nn

    class StreamingLstm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, 8, kernel_size=5, stride=2, padding=2)  # [B, 1, 40] -> [B, 8, 20]
            self.inp = nn.Linear(8 * FEATURES // 2, 4 * HIDDEN)
            self.rec = nn.Linear(HIDDEN, 4 * HIDDEN, bias=False)
            self.head = nn.Linear(HIDDEN, CLASSES)

        def forward(
            self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            feat = torch.relu(self.conv(x)).flatten(1)
            gates = self.inp(feat) + self.rec(h[0])
            i, f, g, o = gates.chunk(4, dim=1)
            c_next = torch.sigmoid(f) * c[0] + torch.sigmoid(i) * torch.tanh(g)
            h_next = torch.sigmoid(o) * torch.tanh(c_next)
            return self.head(h_next), h_next.unsqueeze(0), c_next.unsqueeze(0)

    return StreamingLstm()


def train(*, seed: int = 0, iterations: int = 250, batch: int = 64) -> nn.Module:
    """Train on fresh synthetic sequences (a few seconds on one thread); returns the module in eval mode."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    for it in range(iterations):
        frames, labels = sequences(batch, seed=10_000 + seed * iterations + it)
        x, y = torch.from_numpy(frames), torch.from_numpy(labels)
        h = c = torch.zeros(1, batch, HIDDEN)
        loss = torch.zeros(())
        for t in range(STEPS):
            logits, h, c = model(x[:, t, None, :], h, c)
            loss = loss + loss_fn(logits, y[:, t])
        optimizer.zero_grad()
        (loss / STEPS).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return model.eval()


def export(model: nn.Module, path: Path) -> None:
    """Write the model as ONNX with batch 1 everywhere (TorchScript exporter, one self-contained file)."""
    import onnx
    import torch

    example = (torch.zeros(1, 1, FEATURES), torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=["x", "h", "c"],
            output_names=["logits", "hn", "cn"],
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    proto.doc_string = "Streaming Conv1d + LSTM (tools/lstm_model.py): feed hn/cn back as h/c, one frame per call."
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def accuracy(model: nn.Module, frames: np.ndarray, labels: np.ndarray) -> float:
    """Per-frame accuracy of the module run along the sequences, its state fed back."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(frames)
        h = c = torch.zeros(1, len(frames), HIDDEN)
        right = 0
        for t in range(frames.shape[1]):
            logits, h, c = model(x[:, t, None, :], h, c)
            right += int((logits.argmax(1).numpy() == labels[:, t]).sum())
    return right / labels.size


def build(out_dir: Path, *, seed: int = 0, calib: int = 32, evaluation: int = 64) -> dict[str, Path]:
    """Train, export and write the model and its calibration and evaluation sequences into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = train(seed=seed)
    paths = {"model": out_dir / "lstm.onnx", "calib": out_dir / "lstm_calib.npz", "eval": out_dir / "lstm_eval.npz"}
    export(model, paths["model"])
    for key, count, data_seed in (("calib", calib, 1), ("eval", evaluation, 2)):
        frames, _ = sequences(count, seed=data_seed)
        np.savez(paths[key], x=frames[:, :, None, None, :])  # [S, T, 1, 1, 40]: one call of batch 1 per step
    return paths


def main(argv: list[str]) -> int:
    """``python tools/lstm_model.py OUT_DIR``."""
    if len(argv) != 1:
        print("usage: python tools/lstm_model.py OUT_DIR", file=sys.stderr)
        return 2
    start = time.monotonic()
    paths = build(Path(argv[0]))
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
