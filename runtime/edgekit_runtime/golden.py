"""Golden inputs and outputs: the self-test a device runs before it serves a bundle.

``golden.npz`` holds, for each model input ``NAME``, ``inputs/NAME``; for each output, ``outputs/NAME``
with the expected values and, for floating-point outputs, ``atol/NAME`` and ``rtol/NAME``. An output
passes when ``|actual - expected| <= atol + rtol * |expected|`` everywhere (NumPy's ``allclose`` rule);
integer, boolean and string outputs must be equal. The archive is written with fixed timestamps, so the
same arrays always give the same bytes, and it is read without pickle.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgekit_runtime.errors import BundleError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Golden:
    """Inputs, expected outputs and per-output tolerances."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    atol: dict[str, float]
    rtol: dict[str, float]

    def to_bytes(self) -> bytes:
        """The ``golden.npz`` member: deterministic, no pickle."""
        arrays: dict[str, np.ndarray] = {}
        arrays |= {f"inputs/{k}": v for k, v in self.inputs.items()}
        arrays |= {f"outputs/{k}": v for k, v in self.outputs.items()}
        arrays |= {f"atol/{k}": np.float64(v) for k, v in self.atol.items()}
        arrays |= {f"rtol/{k}": np.float64(v) for k, v in self.rtol.items()}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(key + ".npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                member = io.BytesIO()
                np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
                archive.writestr(info, member.getvalue())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Golden:
        """Read ``golden.npz``; anything malformed is a :class:`BundleError`."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise BundleError(f"golden.npz cannot be read ({exc}): rebuild the bundle") from exc
        parts: dict[str, dict[str, np.ndarray]] = {"inputs": {}, "outputs": {}, "atol": {}, "rtol": {}}
        for key, value in arrays.items():
            group, _, name = key.partition("/")
            if group not in parts or not name:
                raise BundleError(f"golden.npz has an unexpected array '{key}': rebuild the bundle")
            parts[group][name] = value
        if not parts["inputs"] or not parts["outputs"]:
            raise BundleError("golden.npz holds no inputs or no outputs: rebuild the bundle")
        return cls(
            parts["inputs"],
            parts["outputs"],
            {k: float(v) for k, v in parts["atol"].items()},
            {k: float(v) for k, v in parts["rtol"].items()},
        )


@dataclass(frozen=True)
class OutputCheck:
    """How one output compared."""

    name: str
    passed: bool
    max_abs_error: float | None
    detail: str


@dataclass(frozen=True)
class SelfTest:
    """The result of running the golden inputs."""

    checks: tuple[OutputCheck, ...]

    @property
    def passed(self) -> bool:
        """Every output matched."""
        return all(c.passed for c in self.checks)

    def failure(self) -> str:
        """One line naming the outputs that failed (empty when it passed)."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.passed)


def self_test(golden: Golden, run: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]) -> SelfTest:
    """Run the golden inputs through ``run`` and compare every expected output."""
    actual = run(dict(golden.inputs))
    return SelfTest(
        tuple(
            compare(name, expected, actual.get(name), golden.atol.get(name, 0.0), golden.rtol.get(name, 0.0))
            for name, expected in golden.outputs.items()
        )
    )


def compare(name: str, expected: np.ndarray, actual: np.ndarray | None, atol: float, rtol: float) -> OutputCheck:
    """Compare one output by the golden rule."""
    if actual is None:
        return OutputCheck(name, passed=False, max_abs_error=None, detail="the model did not return it")
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        detail = f"shape {list(actual.shape)}, expected {list(expected.shape)}"
        return OutputCheck(name, passed=False, max_abs_error=None, detail=detail)
    if expected.dtype.kind in "fc":
        error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        worst = float(np.nanmax(error)) if error.size else 0.0
        ok = bool(np.all(error <= atol + rtol * np.abs(expected.astype(np.float64))))
        nan_ok = bool(np.array_equal(np.isnan(actual), np.isnan(expected)))
        detail = "ok" if ok and nan_ok else f"max abs error {worst:.3g} over tolerance {atol:.3g} + {rtol:.3g}·|x|"
        return OutputCheck(name, ok and nan_ok, worst, detail)
    equal = actual.astype(expected.dtype) == expected if expected.dtype.kind != "U" else actual.astype(str) == expected
    mismatched = int(np.size(equal) - np.count_nonzero(equal))
    detail = "ok" if not mismatched else f"{mismatched} of {expected.size} values differ"
    return OutputCheck(name, not mismatched, None, detail)
