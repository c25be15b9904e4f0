"""How close a compressed model's outputs are to the original's, and accuracy against labels.

The kind of each output decides its headline number: top-1 agreement for class scores
(2-D float, more than one column), per-position top-1 agreement for sequences of class
probabilities (3-D float ``[N, T, C]`` whose rows sum to one: CTC recognisers, taggers), exact
agreement for integer labels, one minus the relative L2 error for one value per sample
(regressions), cosine similarity for everything else (embeddings, feature maps). Max and mean
absolute error are always reported for float outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgekit.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Sequence

OutputKind = Literal["classes", "sequence", "labels", "values", "tensor"]


def output_kind(reference: np.ndarray) -> OutputKind:
    """Guess what an output holds from its shape and type."""
    if reference.dtype.kind in "iub" and reference.ndim <= 2:  # noqa: PLR2004
        return "labels"
    if reference.dtype.kind == "f" and reference.ndim == 2 and reference.shape[1] > 1:  # noqa: PLR2004
        return "classes"
    if reference.dtype.kind == "f" and reference.size == len(reference):
        return "values"  # one number per sample: a regression
    if reference.dtype.kind == "f" and reference.ndim == 3 and reference.shape[2] > 1 and _is_probability(reference):  # noqa: PLR2004
        return "sequence"
    return "tensor"


def _is_probability(scores: np.ndarray) -> bool:
    """Non-negative rows that sum to one along the last axis (a softmax), so argmax is a class."""
    return bool(scores.min() >= 0.0) and bool(np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of samples (of positions, for a sequence) whose highest-scoring class is the same."""
    axis = 1 if reference.ndim == 2 else -1  # noqa: PLR2004
    return float(np.mean(reference.argmax(axis=axis) == candidate.argmax(axis=axis)))


def relative_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """One minus the relative L2 error, floored at 0: unlike cosine, it counts scale errors."""
    ref = reference.astype(np.float64)
    diff = ref - candidate.astype(np.float64)
    norm = float(np.linalg.norm(ref))
    rel = float(np.linalg.norm(diff)) / norm if norm else float(np.abs(diff).max() > 0)
    return max(0.0, 1.0 - rel)


@dataclass(frozen=True)
class OutputFidelity:
    """Agreement of one output with the reference."""

    name: str
    kind: OutputKind
    headline: str  # "top1_agreement", "label_agreement", "relative_agreement" or "cosine"
    value: float
    max_abs_error: float | None
    mean_abs_error: float | None
    cosine: float | None

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {
            "output": self.name,
            "kind": self.kind,
            "metric": self.headline,
            "value": r(self.value),
            "max_abs_error": r(self.max_abs_error),
            "mean_abs_error": r(self.mean_abs_error),
            "cosine": r(self.cosine),
        }


def compare(name: str, reference: np.ndarray, candidate: np.ndarray) -> OutputFidelity:
    """Compare one output of the compressed model with the original's."""
    kind = output_kind(reference)
    if kind == "labels":
        agree = float(np.mean(reference.reshape(len(reference), -1) == candidate.reshape(len(candidate), -1)))
        return OutputFidelity(name, kind, "label_agreement", agree, None, None, None)
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    diff = np.abs(ref - cand)
    cos = _cosine(ref.reshape(len(ref), -1), cand.reshape(len(cand), -1))
    if kind in {"classes", "sequence"}:
        top1 = top1_agreement(ref, cand)
        return OutputFidelity(name, kind, "top1_agreement", top1, float(diff.max()), float(diff.mean()), cos)
    if kind == "values":
        rel = relative_agreement(ref, cand)
        return OutputFidelity(name, kind, "relative_agreement", rel, float(diff.max()), float(diff.mean()), cos)
    return OutputFidelity(name, kind, "cosine", cos, float(diff.max()), float(diff.mean()), cos)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-sample cosine similarity; over the whole batch when each sample is a single value.

    Two all-zero samples count as identical (1.0), one all-zero sample against a non-zero one as 0.0.
    """
    if a.shape[1] == 1:  # one value per sample: per-sample cosine would be only sign agreement
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    den = norm_a * norm_b
    num = (a * b).sum(axis=1)
    cos = np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))
    cos = np.where((norm_a == 0) & (norm_b == 0), 1.0, cos)  # both all-zero: identical
    return float(np.clip(cos, -1.0, 1.0).mean())


def compare_all(
    names: Sequence[str], reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
) -> list[OutputFidelity]:
    """Compare every output."""
    return [compare(n, r, c) for n, r, c in zip(names, reference, candidate, strict=True)]


def predictions(outputs: Sequence[np.ndarray]) -> np.ndarray | None:
    """Class predictions from a model's outputs: an integer label output, else argmax of class scores."""
    for out in outputs:
        if output_kind(out) == "labels" and out.ndim == 1:
            return out
    for out in outputs:
        if output_kind(out) == "classes":
            return np.asarray(out.argmax(axis=1))
    return None


def accuracy(outputs: Sequence[np.ndarray], labels: np.ndarray) -> float | None:
    """Top-1 accuracy, or ``None`` when no output looks like class predictions."""
    pred = predictions(outputs)
    if pred is None:
        return None
    if labels.size != pred.size:
        raise DataError(
            f"the 'label' array has shape {list(labels.shape)} but the model predicts one class per sample, "
            f"shape {list(pred.shape)}: store class indices (for one-hot labels: label=y.argmax(axis=1))"
        )
    return float(np.mean(pred.reshape(-1) == labels.reshape(-1)))
