"""Golden data for the on-device self-test: a few inputs and what the bundled model answers.

Expected outputs come from the bundled model itself, run on the host. A device runs other kernels (ARM
NEON instead of AVX, another ONNX Runtime build, FP16 arithmetic done natively), so floating-point
outputs get a tolerance:

* ``rtol = 1e-4`` and ``atol = 1e-4 * the output's range on the golden inputs`` (plus 1e-6), what FP32
  kernels that sum in another order stay well inside;
* for a compressed model, plus half the largest difference between the original and the compressed model
  on the same inputs: a device's INT8 kernels may round differently, and that difference stays far below
  the error compression itself introduced, while a wrong model or damaged weights do not;
* for an ONNX model that computes in float16, plus :data:`FP16_ULPS` float16 ulps of the output's largest
  magnitude: x86 builds of ONNX Runtime widen FP16 to FP32 and sum there, while an ARMv8.2 core with FP16
  arithmetic (a Pi 5's Cortex-A76) sums in FP16. The board lab measured the digits CNN's FP16 bundle 0.043
  off on a Cortex-A76 (logits up to 28: about 3 ulps), six times what the first two rules allowed, so the
  device refused a correct bundle (``tests/examples/test_raspberrypi_emulated.py``).

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
#: float16 ulps of an output's largest magnitude that FP16 arithmetic on the device may add (measured: 3)
FP16_ULPS = 8
#: float16's ulp at 1.0
FP16_EPS = 2.0**-10
#: ONNX's element type number for float16
_ONNX_FLOAT16 = 10

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def golden_inputs(data: Dataset, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The first samples of ``data``: one fixed batch, or :data:`GOLDEN_SAMPLES`."""
    n = fixed_batch(specs) or GOLDEN_SAMPLES
    inputs = data.head(n).inputs
    if len(next(iter(inputs.values()))) < n:  # fewer samples than a fixed batch needs: repeat them
        inputs = {k: np.resize(v, (n, *v.shape[1:])) for k, v in inputs.items()}
    return {k: np.ascontiguousarray(v) for k, v in inputs.items()}


def computes_in_float16(model_file: str, data: bytes) -> bool:
    """Whether an ONNX model holds float16 weights or casts to float16 (its arithmetic may then be FP16)."""
    if not model_file.endswith(".onnx"):
        return False
    import onnx

    model = onnx.load_from_string(data)
    if any(init.data_type == _ONNX_FLOAT16 for init in model.graph.initializer):
        return True
    return any(
        node.op_type == "Cast" and any(a.name == "to" and a.i == _ONNX_FLOAT16 for a in node.attribute)
        for node in model.graph.node
    )


def make_golden(
    inputs: dict[str, np.ndarray], run: Runner, *, original: Runner | None = None, float16: bool = False
) -> Golden:
    """Run ``inputs`` through the bundled model, with the tolerance of the module docstring's rules.

    ``original`` (the uncompressed model) and ``float16`` (the model computes in FP16 where the device can) widen it.
    """
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
        if float16 and finite.size:
            tolerance += FP16_ULPS * FP16_EPS * float(np.abs(finite).max())
        atol[name] = float(f"{tolerance:.6g}")
        rtol[name] = BASE_RTOL
    return Golden(inputs=inputs, outputs=expected, atol=atol, rtol=rtol)


def _plain(value: np.ndarray) -> np.ndarray:
    """ONNX Runtime returns strings as object arrays: store them as fixed-width text (no pickle)."""
    array = np.asarray(value)
    return array.astype(str) if array.dtype == object else array
