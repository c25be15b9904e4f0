"""Reference statistics for drift detection: what each input feature looked like on the host's data.

For every input and every feature of it, ``reference.json`` holds count, mean, std, min and max, and a
histogram over quantile bins: ``edges`` are the inner bin edges (deciles by default, each an observed
value, repeated values merged), and ``fractions`` the share of the reference data in each of the
``len(edges) + 1`` bins. A value ``x`` falls in bin ``searchsorted(edges, x, side="right")``: bin 0 is
``x < edges[0]``, the last bin is ``x >= edges[-1]``. The device counts live inputs into the
same bins and compares (PSI).

What a feature is depends on the input's rank: ``[N, F]`` tables have F features (one per column);
``[N, C, H, W]`` / ``[N, H, W, C]`` images one per channel (the smaller of axis 1 and the last axis, which
separates NCHW from NHWC for any image larger than its channel count); ``[N, T, C]`` sequences one per
channel (last axis); anything else, or more than :data:`MAX_FEATURES` features, one feature over all values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgekit.data import Dataset

REFERENCE_VERSION = 1
BINS = 10
MAX_FEATURES = 1024
_TABLE, _SEQUENCE, _IMAGE = 2, 3, 4


def feature_axis(shape: tuple[int, ...]) -> int | None:
    """The axis features run along (``None``: one feature over all values)."""
    if len(shape) == _TABLE:
        axis: int | None = 1
    elif len(shape) == _SEQUENCE:
        axis = 2
    elif len(shape) == _IMAGE:
        axis = 1 if shape[1] <= shape[3] else 3
    else:
        axis = None
    if axis is not None and shape[axis] > MAX_FEATURES:
        return None
    return axis


def feature_stats(values: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Summary and quantile histogram of one feature's values."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None, "edges": [], "fractions": [1.0]}
    quantiles = np.quantile(flat, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
    edges = np.unique(quantiles)
    counts = np.bincount(np.searchsorted(edges, flat, side="right"), minlength=len(edges) + 1)
    return {
        "count": int(flat.size),
        "mean": _num(flat.mean()),
        "std": _num(flat.std()),
        "min": _num(flat.min()),
        "max": _num(flat.max()),
        "edges": [_num(e) for e in edges],
        "fractions": [_num(c / flat.size) for c in counts],
    }


def _num(value: float | np.floating[Any]) -> float:
    # 9 significant digits: float32 data round-trips, and the JSON stays readable and stable
    return float(f"{float(value):.9g}")


def reference(
    data: Dataset | None, *, feature_names: tuple[str, ...] | None = None, bins: int = BINS
) -> dict[str, Any]:
    """The ``reference.json`` document for ``data`` (an empty one, saying why, without data)."""
    if data is None or data.synthetic:
        return {
            "reference_version": REFERENCE_VERSION,
            "source": None,
            "samples": 0,
            "bins": bins,
            "inputs": [],
            "note": "no real data was given: pass --calib or --eval to enable drift detection",
        }
    inputs = []
    for name, array in data.inputs.items():
        if array.dtype.kind not in "biuf":
            continue
        axis = feature_axis(array.shape)
        if axis is None:
            features = [{"index": None, **feature_stats(array, bins)}]
        else:
            moved = np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis])
            features = [{"index": i, **feature_stats(moved[:, i], bins)} for i in range(moved.shape[1])]
        names = feature_names if len(data.inputs) == 1 and axis == 1 and len(array.shape) == _TABLE else None
        if names is not None and len(names) == len(features):
            for feature, feature_name in zip(features, names, strict=True):
                feature["name"] = feature_name
        inputs.append({"name": name, "feature_axis": axis, "features": features})
    return {
        "reference_version": REFERENCE_VERSION,
        "source": Path(data.source).name,
        "samples": data.size,
        "bins": bins,
        "inputs": inputs,
    }


def reference_bytes(doc: dict[str, Any]) -> bytes:
    """The ``reference.json`` member."""
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
