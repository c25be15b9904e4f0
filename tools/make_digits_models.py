"""Build the bundled ``examples/digits`` models and data sets.

Trains two small classifiers on scikit-learn's ``load_digits`` (1797 8x8
grey-scale images, pixel values 0..16, 10 classes) and writes them, together
with test and calibration data, to ``--out`` (default ``examples/digits``):

* ``cnn.onnx``        - PyTorch CNN (``tools/digits_cnn.py``), opset 17,
  input ``input`` float32 ``[N, 1, 8, 8]``, output ``logits`` float32 ``[N, 10]``.
* ``mlp.onnx``        - scikit-learn ``MLPClassifier`` converted with skl2onnx,
  input ``input`` float32 ``[N, 64]``, outputs ``label`` int64 ``[N]`` and
  ``probabilities`` float32 ``[N, 10]``.
* ``cnn_test.npz``    - ``input`` float32 ``[N, 1, 8, 8]``, ``label`` int64 ``[N]``.
* ``cnn_calib.npz``   - ``input`` float32 ``[200, 1, 8, 8]`` (train split).
* ``mlp_test.npz``    - ``input`` float32 ``[N, 64]``, ``label`` int64 ``[N]``.
* ``mlp_calib.npz``   - ``input`` float32 ``[200, 64]`` (train split).

Pixels are scaled to ``[0, 1]`` by dividing by 16. The script is
deterministic (fixed seeds, single thread, deterministic kernels).

This is a developer tool, not part of the package; it needs ``torch``,
``scikit-learn``, ``skl2onnx``, ``onnx``, ``onnxscript`` and ``onnxruntime``.

Usage::

    python tools/make_digits_models.py [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from torch import nn
from torch.nn import functional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits_cnn

SEED: Final[int] = 0
OPSET: Final[int] = 17
ML_OPSET: Final[int] = 3
N_CALIB: Final[int] = 200
BATCH_SIZE: Final[int] = 64
LEARNING_RATE: Final[float] = 3e-3
EVAL_BATCH_SIZE: Final[int] = 32
DEFAULT_OUT: Final[Path] = Path(__file__).resolve().parent.parent / "examples" / "digits"

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def seed_everything(seed: int) -> None:
    """Seed PyTorch and force single-threaded, deterministic CPU execution.

    scikit-learn and the data split take explicit ``random_state`` seeds instead.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(mode=True)


def load_split() -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """Return ``(x_train, x_test, y_train, y_test)`` with pixels scaled to [0, 1].

    Images are flattened to ``[N, 64]``; the split is stratified, 25 % test.
    """
    digits = load_digits()
    x = (digits.data / digits_cnn.PIXEL_SCALE).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    return x_train, x_test, y_train, y_test


def to_images(x: FloatArray) -> FloatArray:
    """Reshape flat ``[N, 64]`` pixels to ``[N, 1, 8, 8]`` images."""
    return np.ascontiguousarray(x.reshape(-1, *digits_cnn.INPUT_SHAPE[1:]), dtype=np.float32)


def random_shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each ``[N, 1, 8, 8]`` image by -1, 0 or +1 pixels in x and y (zero fill)."""
    n, _, h, w = images.shape
    padded = functional.pad(images, (1, 1, 1, 1))
    dy = torch.randint(0, 3, (n,), generator=generator)
    dx = torch.randint(0, 3, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    batch = torch.arange(n)[:, None, None]
    return padded[batch, 0, rows, cols].unsqueeze(1)


def train_cnn(x_train: FloatArray, y_train: IntArray, epochs: int) -> nn.Module:
    """Train the digits CNN with Adam and shift augmentation; return it in eval mode."""
    model = digits_cnn.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    generator = torch.Generator().manual_seed(SEED)
    images = torch.from_numpy(x_train)
    labels = torch.from_numpy(y_train)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            batch = random_shift(images[idx], generator)
            loss = functional.cross_entropy(model(batch), labels[idx])
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
        scheduler.step()
    return model.eval()


def torch_accuracy(model: nn.Module, x: FloatArray, y: IntArray) -> float:
    """Return the accuracy of ``model`` on images ``x`` with labels ``y``."""
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float(np.mean(pred == y))


def export_cnn(model: nn.Module, path: Path) -> None:
    """Export the CNN to a single-file ONNX model with a dynamic batch axis."""
    example = torch.zeros((2, *digits_cnn.INPUT_SHAPE[1:]), dtype=torch.float32)
    batch = torch.export.Dim("batch")
    # The exporter builds opset 18 and converts down to 17, logging about it (and
    # about torchvision); both are expected, so keep the summary output clean.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["input"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamic_shapes=({0: batch},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    if program is None:
        raise RuntimeError("torch.onnx.export did not return an ONNXProgram")
    proto = program.model_proto
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset != OPSET:
        raise RuntimeError(f"exported CNN has opset {opset}, expected {OPSET}")
    proto.doc_string = "Digits CNN (tools/digits_cnn.py) trained on sklearn load_digits; input = pixels / 16."
    save_onnx(proto, path)


def train_mlp(x_train: FloatArray, y_train: IntArray) -> MLPClassifier:
    """Train a one-hidden-layer scikit-learn MLP on flat ``[N, 64]`` pixels."""
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=1000, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return clf


def export_mlp(clf: MLPClassifier, path: Path) -> None:
    """Convert the MLP with skl2onnx (no ZipMap) and save it."""
    proto = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    proto.doc_string = "Digits MLPClassifier(64,) trained on sklearn load_digits; input = pixels / 16."
    for value in [*proto.graph.input, *proto.graph.output]:
        first = value.type.tensor_type.shape.dim[0]
        if not first.dim_param and not first.HasField("dim_value"):
            first.dim_param = "batch"  # name skl2onnx's anonymous dynamic axis like the CNN's
    save_onnx(proto, path)


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Check ``proto`` and write it as one self-contained ``.onnx`` file."""
    onnx.checker.check_model(proto, full_check=True)
    path.write_bytes(proto.SerializeToString())


def run_onnx(path: Path, x: FloatArray, output: str) -> npt.NDArray[np.generic]:
    """Run ``path`` in onnxruntime on ``x`` in batches; return output ``output``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    chunks = [
        session.run([output], {"input": x[start : start + EVAL_BATCH_SIZE]})[0]
        for start in range(0, len(x), EVAL_BATCH_SIZE)
    ]
    return np.concatenate(chunks)


def main(argv: list[str] | None = None) -> int:
    """Train, export and verify both models; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=40, help="CNN training epochs (default: %(default)s)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    seed_everything(SEED)
    x_train, x_test, y_train, y_test = load_split()
    img_train, img_test = to_images(x_train), to_images(x_test)
    # train_test_split already shuffled the train split, so its head is a random sample.
    np.savez_compressed(out / "cnn_test.npz", input=img_test, label=y_test)
    np.savez_compressed(out / "cnn_calib.npz", input=img_train[:N_CALIB])
    np.savez_compressed(out / "mlp_test.npz", input=x_test, label=y_test)
    np.savez_compressed(out / "mlp_calib.npz", input=x_train[:N_CALIB])

    cnn = train_cnn(img_train, y_train, args.epochs)
    cnn_acc = torch_accuracy(cnn, img_test, y_test)
    cnn_path = out / "cnn.onnx"
    export_cnn(cnn, cnn_path)
    with torch.no_grad():
        ref_logits = cnn(torch.from_numpy(img_test)).numpy()
    onnx_logits = run_onnx(cnn_path, img_test, "logits")
    cnn_onnx_acc = float(np.mean(onnx_logits.argmax(axis=1) == y_test))
    cnn_diff = float(np.max(np.abs(onnx_logits - ref_logits)))

    mlp = train_mlp(x_train, y_train)
    mlp_acc = float(mlp.score(x_test, y_test))
    mlp_path = out / "mlp.onnx"
    export_mlp(mlp, mlp_path)
    onnx_labels = run_onnx(mlp_path, x_test, "label")
    onnx_probs = run_onnx(mlp_path, x_test, "probabilities")
    mlp_onnx_acc = float(np.mean(onnx_labels == y_test))
    mlp_diff = float(np.max(np.abs(onnx_probs - mlp.predict_proba(x_test))))

    n_params = sum(p.numel() for p in cnn.parameters())
    print(f"train/test samples: {len(x_train)}/{len(x_test)}, calibration samples: {N_CALIB}")
    print(
        f"cnn ({n_params} params, {args.epochs} epochs): torch acc {cnn_acc:.4f}, "
        f"onnx acc {cnn_onnx_acc:.4f}, max |logit diff| {cnn_diff:.2e}"
    )
    print(
        f"mlp ({mlp.n_iter_} iters): sklearn acc {mlp_acc:.4f}, "
        f"onnx acc {mlp_onnx_acc:.4f}, max |proba diff| {mlp_diff:.2e}"
    )
    for path in sorted(out.iterdir()):
        if path.suffix in {".onnx", ".npz"}:
            print(f"{path.stat().st_size:>9,d} B  {path}")

    ok = cnn_onnx_acc == cnn_acc and mlp_onnx_acc == mlp_acc
    if not ok:
        print("ERROR: ONNX and reference accuracies differ", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
