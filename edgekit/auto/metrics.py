"""The number the budget is about: accuracy against labels, or fidelity to the FP32 model's outputs.

A metric is a function ``(outputs, target) -> float``. ``outputs`` is the list of a model's outputs
over the evaluation samples; ``target`` is the ``label`` array when the data has labels and the
metric needs them, else the FP32 model's outputs (a list like ``outputs``).

Built in: ``accuracy`` (top-1), ``mae`` and ``rmse`` (regressors: lower is better) with labels;
``agreement`` (each output's headline fidelity, see :mod:`edgekit.measure.fidelity`, the worst one
counts), ``top1``, ``cosine`` and ``relative`` without. ``--metric module:function`` or
``--metric path/to/file.py:function`` names a user function with the same signature; it is taken as
higher-is-better unless it has an attribute ``higher_is_better = False``.
"""

from __future__ import annotations

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
        return {"name": self.name, "higher_is_better": self.higher_is_better, "uses_labels": self.uses_labels}


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


def _top1(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    scores = [fidelity.top1_agreement(r, o) for r, o in zip(reference, outputs, strict=True) if r.dtype.kind == "f"]
    if not scores:
        raise DataError("no float output to take a top-1 of: use --metric agreement")
    return min(scores)


def _cosine(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    names = [str(i) for i in range(len(reference))]
    values = [f.cosine for f in fidelity.compare_all(names, reference, outputs) if f.cosine is not None]
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


def choose_metric(name: str | None, *, has_labels: bool, reference: Sequence[np.ndarray]) -> Metric:
    """The metric named by ``--metric``, or the one that fits the data and the model's outputs."""
    if name is None:
        if not has_labels:
            return BUILTIN["agreement"]
        if fidelity.predictions(reference) is not None:
            return BUILTIN["accuracy"]
        if any(fidelity.output_kind(o) == "values" for o in reference):
            return BUILTIN["mae"]
        return BUILTIN["agreement"]
    if ":" in name:
        metric = load_user_metric(name)
        return Metric(metric.name, metric.fn, metric.higher_is_better, uses_labels=has_labels)
    if name not in BUILTIN:
        msg = f"--metric '{name}' is unknown: choose from {', '.join(BUILTIN)} or give module:function"
        raise ConfigError(msg)
    metric = BUILTIN[name]
    if metric.uses_labels and not has_labels:
        raise ConfigError(f"--metric {name} needs labels: pass --eval FILE.npz with a 'label' array")
    return metric


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
