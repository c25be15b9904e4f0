"""How close a compressed model's outputs are to the original's, and accuracy against labels.

The kind of each output decides its headline number (its *judgement*):

- ``classes``: top-1 agreement, only for a 2-D float output that looks like class scores: softmax rows
  (non-negative, each summing to one), as many columns as the classifier's declared labels, or a name
  such as ``logits``, ``probabilities``, ``probs``, ``scores`` or ``output_label``;
- ``sequence``: per-position top-1 agreement for sequences of class probabilities (3-D float ``[N, T, C]``
  whose rows sum to one: CTC recognisers, taggers);
- ``labels``: exact agreement for integer outputs;
- ``values``: one minus the relative L2 error for one value per sample (regressions);
- ``tensor``: everything else (embeddings, feature maps, unnamed scores): the worst sample's cosine
  similarity, so that one sample pointing elsewhere is not averaged away.

Max and mean absolute error, the mean cosine and the relative error are always reported for float
outputs. A run can name an output's judgement itself (``--metric embeddings=cosine``, see
:class:`OutputHints`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgekit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

OutputKind = Literal["classes", "sequence", "labels", "values", "tensor"]

#: words in an output's name that say it holds class scores (``logits``, ``output_probability``, ``scores``)
CLASS_WORDS = frozenset(
    {"logits", "logit", "probabilities", "probability", "probs", "prob", "scores", "softmax", "label", "labels"}
)

#: the judgements ``--metric OUTPUT=METRIC`` can name, and the kind each treats the output as
JUDGEMENTS: dict[str, OutputKind] = {"top1": "classes", "cosine": "tensor", "relative": "values", "exact": "labels"}

#: how each kind is judged, in words (the report's ``judged``)
JUDGED: dict[OutputKind, str] = {
    "classes": "top-1 agreement",
    "sequence": "top-1 agreement per position",
    "labels": "exact agreement",
    "values": "1 - relative error",
    "tensor": "cosine (worst sample)",
}


@dataclass(frozen=True)
class OutputHints:
    """What a run knows about its outputs beyond their values."""

    #: how many class labels the model declares (``--labels``, a classifier importer's classes), if any
    classes: int | None = None
    #: per output name, the judgement asked for (``--metric OUTPUT=METRIC``): a key of :data:`JUDGEMENTS`
    judged: Mapping[str, str] = field(default_factory=dict)


def output_kind(reference: np.ndarray, name: str = "", *, classes: int | None = None) -> OutputKind:
    """Guess what an output holds from its type, shape, values and name (``classes``: declared label count)."""
    if reference.dtype.kind in "iub" and reference.ndim <= 2:  # noqa: PLR2004
        return "labels"
    if reference.dtype.kind != "f":
        return "tensor"
    if reference.ndim == 2 and reference.shape[1] > 1:  # noqa: PLR2004
        declared = classes is not None and reference.shape[1] == classes
        return "classes" if declared or _class_name(name) or _is_probability(reference) else "tensor"
    if reference.size == len(reference):
        return "values"  # one number per sample: a regression
    if reference.ndim == 3 and reference.shape[2] > 1 and _is_probability(reference):  # noqa: PLR2004
        return "sequence"
    return "tensor"


def _class_name(name: str) -> bool:
    """``logits``, ``output_probability``, ``/head/Softmax_output_0``: a name that says class scores."""
    return any(word in CLASS_WORDS for word in re.split(r"[^a-z0-9]+", name.lower()))


def _is_probability(scores: np.ndarray) -> bool:
    """Non-negative rows that sum to one along the last axis (a softmax), so argmax is a class."""
    return bool(scores.min() >= 0.0) and bool(np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))


def judge(names: Sequence[str], reference: Sequence[np.ndarray], hints: OutputHints | None = None) -> list[OutputKind]:
    """The kind each output is judged as: the one asked for in ``hints``, else :func:`output_kind`'s guess."""
    hints = hints or OutputHints()
    kinds: list[OutputKind] = []
    for name, ref in zip(names, reference, strict=True):
        asked = hints.judged.get(name)
        if asked is None:
            kinds.append(output_kind(ref, name, classes=hints.classes))
            continue
        kind = JUDGEMENTS[asked]
        if kind == "classes" and (ref.ndim < 2 or ref.shape[-1] < 2):  # noqa: PLR2004
            msg = f"--metric {name}={asked}: output '{name}' has shape {list(ref.shape)}, no classes to take a top-1 of"
            raise ConfigError(f"{msg}: judge it by cosine or relative")
        if kind == "classes" and ref.ndim > 2:  # noqa: PLR2004
            kind = "sequence"
        kinds.append(kind)
    return kinds


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of samples (of positions, for a sequence) whose highest-scoring class is the same."""
    axis = 1 if reference.ndim == 2 else -1  # noqa: PLR2004
    return float(np.mean(reference.argmax(axis=axis) == candidate.argmax(axis=axis)))


def relative_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """One minus the relative L2 error, floored at 0: unlike cosine, it counts scale errors."""
    return max(0.0, 1.0 - relative_error(reference, candidate))


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``|candidate - reference| / |reference|`` over the whole output (L2)."""
    ref = reference.astype(np.float64)
    diff = ref - candidate.astype(np.float64)
    norm = float(np.linalg.norm(ref))
    return float(np.linalg.norm(diff)) / norm if norm else float(np.abs(diff).max() > 0)


@dataclass(frozen=True)
class OutputFidelity:
    """Agreement of one output with the reference."""

    name: str
    kind: OutputKind
    headline: str  # "top1_agreement", "label_agreement", "relative_agreement" or "cosine" (the worst sample's)
    value: float
    max_abs_error: float | None
    mean_abs_error: float | None
    #: the mean per-sample cosine
    cosine: float | None
    #: the lowest per-sample cosine
    worst_cosine: float | None = None
    relative_error: float | None = None

    @property
    def judged(self) -> str:
        """How the headline judges this output, in words: ``cosine (worst sample)``, ``top-1 agreement``."""
        return JUDGED[self.kind]

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {
            "output": self.name,
            "kind": self.kind,
            "judged": self.judged,
            "metric": self.headline,
            "value": r(self.value),
            "max_abs_error": r(self.max_abs_error),
            "mean_abs_error": r(self.mean_abs_error),
            "cosine": r(self.cosine),
            "worst_cosine": r(self.worst_cosine),
            "relative_error": r(self.relative_error),
        }


def compare(name: str, reference: np.ndarray, candidate: np.ndarray, kind: OutputKind | None = None) -> OutputFidelity:
    """Compare one output of the compressed model with the original's, judged as ``kind`` (else guessed)."""
    kind = kind or output_kind(reference, name)
    if kind == "labels":
        agree = float(np.mean(reference.reshape(len(reference), -1) == candidate.reshape(len(candidate), -1)))
        return OutputFidelity(name, kind, "label_agreement", agree, None, None, None)
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    diff = np.abs(ref - cand)
    cosines = sample_cosines(ref, cand)
    cos, worst, rel = float(cosines.mean()), float(cosines.min()), relative_error(ref, cand)
    errors = (float(diff.max()), float(diff.mean()), cos, worst, rel)
    if kind in {"classes", "sequence"}:
        return OutputFidelity(name, kind, "top1_agreement", top1_agreement(ref, cand), *errors)
    if kind == "values":
        return OutputFidelity(name, kind, "relative_agreement", max(0.0, 1.0 - rel), *errors)
    return OutputFidelity(name, kind, "cosine", worst, *errors)


def sample_cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine similarity per sample; one over the whole batch when each sample is a single value.

    Two all-zero samples count as identical (1.0), one all-zero sample against a non-zero one as 0.0.
    """
    a = reference.astype(np.float64).reshape(len(reference), -1)
    b = candidate.astype(np.float64).reshape(len(candidate), -1)
    if a.shape[1] == 1:  # one value per sample: per-sample cosine would be only sign agreement
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    den = norm_a * norm_b
    num = (a * b).sum(axis=1)
    cos = np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))
    cos = np.where((norm_a == 0) & (norm_b == 0), 1.0, cos)  # both all-zero: identical
    return np.asarray(np.clip(cos, -1.0, 1.0))


def compare_all(
    names: Sequence[str],
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    kinds: Sequence[OutputKind] | None = None,
) -> list[OutputFidelity]:
    """Compare every output, each judged as ``kinds`` says (else as :func:`output_kind` guesses)."""
    kinds = kinds or [output_kind(r, n) for n, r in zip(names, reference, strict=True)]
    return [compare(n, r, c, k) for n, r, c, k in zip(names, reference, candidate, kinds, strict=True)]


def predictions(outputs: Sequence[np.ndarray]) -> np.ndarray | None:
    """Class predictions from a model's outputs: an integer label output, else argmax of class scores.

    With labels given, any 2-D float output with more than one column is taken as class scores: the labels
    say the model is a classifier.
    """
    for out in outputs:
        if output_kind(out) == "labels" and out.ndim == 1:
            return out
    for out in outputs:
        if out.dtype.kind == "f" and out.ndim == 2 and out.shape[1] > 1:  # noqa: PLR2004
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
