"""Golden data for the on-device self-test: a few inputs and what the bundled model answers.

Expected outputs come from the bundled model itself, run on the host. A device runs other kernels (ARM
NEON instead of AVX, another ONNX Runtime build, FP16 arithmetic done natively), so floating-point
outputs get a tolerance:

* ``rtol = 1e-4`` and ``atol = 1e-4 * the output's range on the golden inputs`` (plus 1e-6), what FP32
  kernels that sum in another order stay well inside;
* for a compressed model, plus half the largest difference between the original and the compressed model
  on the same inputs: a device's INT8 or FP16 kernels may round differently, and that difference stays
  far below the error compression itself introduced, while a wrong model or damaged weights do not.

Integer, boolean and string outputs (a classifier's labels) must match exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgekit.data import fixed_batch
from edgekit_runtime.golden import Golden

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgekit.data import Dataset
    from edgekit.graph_stats import TensorSpec

#: golden samples when the model takes any batch size
GOLDEN_SAMPLES = 8
BASE_RTOL = 1e-4
BASE_ATOL = 1e-4

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def golden_inputs(data: Dataset, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The first samples of ``data``: one fixed batch, or :data:`GOLDEN_SAMPLES`."""
    n = fixed_batch(specs) or GOLDEN_SAMPLES
    inputs = data.head(n).inputs
    if len(next(iter(inputs.values()))) < n:  # fewer samples than a fixed batch needs: repeat them
        inputs = {k: np.resize(v, (n, *v.shape[1:])) for k, v in inputs.items()}
    return {k: np.ascontiguousarray(v) for k, v in inputs.items()}


def make_golden(inputs: dict[str, np.ndarray], run: Runner, *, original: Runner | None = None) -> Golden:
    """Run ``inputs`` through the bundled model; ``original`` (the uncompressed model) widens the tolerance."""
    expected = {k: _plain(v) for k, v in run(inputs).items()}
    reference = {k: _plain(v) for k, v in original(inputs).items()} if original is not None else {}
    atol: dict[str, float] = {}
    rtol: dict[str, float] = {}
    for name, value in expected.items():
        if value.dtype.kind not in "fc":
            continue
        finite = value[np.isfinite(value)]
        spread = float(finite.max() - finite.min()) if finite.size else 0.0
        tolerance = BASE_ATOL * spread + 1e-6
        base = reference.get(name)
        if base is not None and base.shape == value.shape:
            tolerance += 0.5 * float(np.nanmax(np.abs(base.astype(np.float64) - value.astype(np.float64))))
        atol[name] = float(f"{tolerance:.6g}")
        rtol[name] = BASE_RTOL
    return Golden(inputs=inputs, outputs=expected, atol=atol, rtol=rtol)


def _plain(value: np.ndarray) -> np.ndarray:
    """ONNX Runtime returns strings as object arrays: store them as fixed-width text (no pickle)."""
    array = np.asarray(value)
    return array.astype(str) if array.dtype == object else array
