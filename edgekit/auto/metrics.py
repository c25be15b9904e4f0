"""The number the budget is about: accuracy against labels, or fidelity to the FP32 model's outputs.

A metric is a function ``(outputs, target) -> float``. ``outputs`` is the list of a model's outputs
over the evaluation samples; ``target`` is the ``label`` array when the data has labels and the
metric needs them, else the FP32 model's outputs (a list like ``outputs``).

Built in: ``accuracy`` (top-1), ``mae`` and ``rmse`` (regressors: lower is better) with labels;
``agreement`` (each output's headline fidelity, see :mod:`edgekit.measure.fidelity`, the worst one
counts), ``top1``, ``cosine`` (the worst sample's) and ``relative`` without. Without labels the default is
``agreement``, named ``cosine`` when every output is judged by cosine (an embedding model).
``--metric OUTPUT=METRIC[,OUTPUT=METRIC...]`` judges the named outputs by ``top1``, ``cosine``,
``relative`` or ``exact`` under ``agreement``. ``--metric module:function`` or
``--metric path/to/file.py:function`` names a user function with the same signature; it is taken as
higher-is-better unless it has an attribute ``higher_is_better = False``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import ConfigError, DataError, EdgekitError
from edgekit.measure import fidelity

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    MetricFn = Callable[[Sequence[np.ndarray], Any], float]


@dataclass(frozen=True)
class Metric:
    """A named score of a model's outputs."""

    name: str
    fn: MetricFn
    higher_is_better: bool = True
    #: ``True``: ``target`` is the label array; ``False``: it is the FP32 model's outputs
    uses_labels: bool = False
    #: the outputs by name and the kind each is judged as (empty: not known)
    judged: tuple[tuple[str, fidelity.OutputKind], ...] = ()

    @property
    def kinds(self) -> list[fidelity.OutputKind] | None:
        """Each output's kind, in output order (``None``: not known)."""
        return [k for _, k in self.judged] or None

    def __call__(self, outputs: Sequence[np.ndarray], target: Any) -> float:  # noqa: ANN401  (labels or outputs)
        """Score ``outputs``; a user function's failure becomes a one-line :class:`ConfigError`."""
        try:
            value = float(self.fn(outputs, target))
        except EdgekitError:
            raise
        except Exception as exc:  # a user callable may raise anything
            first = (str(exc).strip().splitlines() or [""])[0]
            msg = f"metric '{self.name}' failed ({type(exc).__name__}: {first}): fix the function or pick a built-in"
            raise ConfigError(msg) from exc
        if math.isnan(value):
            raise ConfigError(f"metric '{self.name}' returned NaN: make it return a number for every model")
        return value

    def rank_key(self, value: float | None) -> float:
        """A key under which a better value is larger, whatever the metric's direction; none is the worst."""
        if value is None:
            return -math.inf
        return value if self.higher_is_better else -value

    def to_json(self) -> dict[str, object]:
        """Serialisable form."""
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "uses_labels": self.uses_labels,
            "judged": {name: fidelity.JUDGED[kind] for name, kind in self.judged},
        }


def _accuracy(outputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
    value = fidelity.accuracy(outputs, labels)
    if value is None:
        raise DataError("no output looks like class scores or labels, so accuracy is undefined: use --metric mae")
    return value


def _regression_errors(outputs: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    predicted = next((o for o in outputs if o.dtype.kind == "f"), None)
    if predicted is None or predicted.size != labels.size:
        raise DataError(
            f"labels have {labels.size} values but no float output has as many: mae/rmse need one value per label"
        )
    return np.asarray(predicted, dtype=np.float64).reshape(-1) - np.asarray(labels, dtype=np.float64).reshape(-1)


def _mae(outputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
    return float(np.abs(_regression_errors(outputs, labels)).mean())


def _rmse(outputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
    return float(np.sqrt(np.square(_regression_errors(outputs, labels)).mean()))


def _agreement(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    names = [str(i) for i in range(len(reference))]
    return min(f.value for f in fidelity.compare_all(names, reference, outputs))


@dataclass(frozen=True)
class Agreement:
    """``agreement`` with each output judged as a run decided (its names, labels and ``--metric OUTPUT=METRIC``)."""

    names: tuple[str, ...]
    kinds: tuple[fidelity.OutputKind, ...]

    def __call__(self, outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
        """The worst output's headline fidelity."""
        return min(f.value for f in fidelity.compare_all(self.names, reference, outputs, self.kinds))


def _top1(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    scores = [fidelity.top1_agreement(r, o) for r, o in zip(reference, outputs, strict=True) if r.dtype.kind == "f"]
    if not scores:
        raise DataError("no float output to take a top-1 of: use --metric agreement")
    return min(scores)


def _cosine(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    pairs = zip(reference, outputs, strict=True)
    values = [float(fidelity.sample_cosines(r, o).min()) for r, o in pairs if r.dtype.kind == "f"]
    if not values:
        raise DataError("no float output to compare by cosine: use --metric agreement")
    return min(values)


def _relative(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    values = [fidelity.relative_agreement(r, o) for r, o in zip(reference, outputs, strict=True) if r.dtype.kind == "f"]
    if not values:
        raise DataError("no float output to compare: use --metric agreement")
    return min(values)


BUILTIN: dict[str, Metric] = {
    "accuracy": Metric("accuracy", _accuracy, uses_labels=True),
    "mae": Metric("mae", _mae, higher_is_better=False, uses_labels=True),
    "rmse": Metric("rmse", _rmse, higher_is_better=False, uses_labels=True),
    "agreement": Metric("agreement", _agreement),
    "top1": Metric("top1", _top1),
    "cosine": Metric("cosine", _cosine),
    "relative": Metric("relative", _relative),
}


def parse_metric(spec: str | None) -> tuple[str | None, dict[str, str]]:
    """``--metric NAME``, ``OUTPUT=METRIC,...`` or both: the plain name and the per-output judgements."""
    if spec is None:
        return None, {}
    plain: list[str] = []
    judged: dict[str, str] = {}
    for item in (i.strip() for i in spec.split(",")):
        output, sep, judgement = item.partition("=")
        if not sep:
            plain.append(item)
            continue
        if not output.strip() or judgement.strip() not in fidelity.JUDGEMENTS:
            raise ConfigError(
                f"--metric '{item}' is not OUTPUT=METRIC: METRIC is one of {', '.join(fidelity.JUDGEMENTS)} "
                "(write it like embeddings=cosine)"
            )
        judged[output.strip()] = judgement.strip()
    if len(plain) > 1 or (plain and not plain[0]):
        raise ConfigError(f"--metric '{spec}' names more than one metric: give one, plus OUTPUT=METRIC judgements")
    name = plain[0] if plain else None
    if judged and name not in {None, "agreement"}:
        raise ConfigError(
            f"--metric '{spec}': OUTPUT=METRIC judges outputs against the FP32 model (agreement), "
            f"not {name}: drop '{name}' or the judgements"
        )
    return name, judged


def check_metric(spec: str | None) -> None:
    """Refuse a ``--metric`` that cannot be right whatever the model, before any work."""
    name, _ = parse_metric(spec)
    if name is None:
        return
    if ":" in name:
        load_user_metric(name)  # import errors now
    elif name not in BUILTIN:
        raise ConfigError(f"--metric '{name}' is unknown: choose from {', '.join(BUILTIN)} or give module:function")


def choose_metric(
    name: str | None,
    *,
    has_labels: bool,
    reference: Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    hints: fidelity.OutputHints | None = None,
) -> Metric:
    """The metric named by ``--metric``, or the one that fits the data and the model's outputs.

    ``names`` are the outputs' names (for ``OUTPUT=METRIC`` and for guessing class scores by name),
    ``hints`` what the run knows beside (a classifier's declared label count).
    """
    name, asked = parse_metric(name)
    judged = _judged(asked, reference, names, hints)
    fn = Agreement(tuple(n for n, _ in judged), tuple(k for _, k in judged))
    agreement = Metric("agreement", fn, judged=judged)
    if asked:
        return agreement
    if name is None:
        return _default(agreement, has_labels=has_labels, reference=reference)
    if ":" in name:
        metric = load_user_metric(name)
        return Metric(metric.name, metric.fn, metric.higher_is_better, uses_labels=has_labels, judged=judged)
    if name not in BUILTIN:
        msg = f"--metric '{name}' is unknown: choose from {', '.join(BUILTIN)} or give module:function"
        raise ConfigError(msg)
    metric = BUILTIN[name]
    if metric.uses_labels and not has_labels:
        raise ConfigError(f"--metric {name} needs labels: pass --eval FILE.npz with a 'label' array")
    return agreement if name == "agreement" else dataclasses.replace(metric, judged=judged)


def _judged(
    asked: dict[str, str],
    reference: Sequence[np.ndarray],
    names: Sequence[str] | None,
    hints: fidelity.OutputHints | None,
) -> tuple[tuple[str, fidelity.OutputKind], ...]:
    """Each output's name and the kind it is judged as; an ``OUTPUT=METRIC`` naming no output is refused."""
    names = tuple(names) if names is not None else tuple(str(i) for i in range(len(reference)))
    unknown = [o for o in asked if o not in names]
    if unknown:
        raise ConfigError(
            f"--metric {unknown[0]}={asked[unknown[0]]}: the model has no output '{unknown[0]}': name one of "
            f"{', '.join(names)}, judged by {', '.join(fidelity.JUDGEMENTS)}"
        )
    base = hints or fidelity.OutputHints()
    kinds = fidelity.judge(names, reference, fidelity.OutputHints(base.classes, {**base.judged, **asked}))
    return tuple(zip(names, kinds, strict=True))


def _default(agreement: Metric, *, has_labels: bool, reference: Sequence[np.ndarray]) -> Metric:
    """No ``--metric``: accuracy (or MAE) with labels; without, agreement, or cosine for embeddings."""
    kinds = agreement.kinds or []
    if not has_labels:
        if all(k == "tensor" and r.dtype.kind == "f" for k, r in zip(kinds, reference, strict=True)):
            return dataclasses.replace(agreement, name="cosine")  # embeddings: the worst sample's cosine
        return agreement
    if fidelity.predictions(reference) is not None:
        return dataclasses.replace(BUILTIN["accuracy"], judged=agreement.judged)
    if any(fidelity.output_kind(o) == "values" for o in reference):
        return dataclasses.replace(BUILTIN["mae"], judged=agreement.judged)
    return agreement


def load_user_metric(spec: str) -> Metric:
    """Import ``module:function`` or ``file.py:function``."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr.isidentifier():
        raise ConfigError(f"--metric '{spec}' is not module:function: write it like mymetrics:f1_score")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:  # find modules beside the user, as python -m
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except (ImportError, OSError, SyntaxError) as exc:
        raise ConfigError(f"--metric cannot import '{module_name}' ({exc}): check the module name or path") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"--metric: '{module_name}' has no function '{attr}': check the name after the colon")
    return Metric(spec, fn, higher_is_better=bool(getattr(fn, "higher_is_better", True)))


def _import_file(path: Path) -> object:
    if not path.is_file():
        raise OSError(f"no file {path}")
    spec = importlib.util.spec_from_file_location(f"edgekit_user_metric_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
