"""scikit-learn estimators (pickle, joblib or skops files) made into ONNX with skl2onnx.

**Loading a pickle or joblib file runs the code in it**: import only files you trust. edgekit reads
them from a local regular file only (never a URL). A ``.skops`` file is safer: its types are listed
before anything is loaded, and edgekit loads it only when each is from scikit-learn, NumPy or SciPy.

The ONNX model has one float32 input ``input`` of shape ``[N, F]`` (F from ``n_features_in_``). A
classifier is converted without ZipMap, so its outputs are two plain tensors: ``label`` and
``probabilities`` (one column per entry of :attr:`Imported.labels`); a regressor's is ``variable``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigError, MissingExtraError, ModelError
from edgekit.importers.base import DEFAULT_OPSET, URL_PATTERN, Imported, ImportOptions, Kind

if TYPE_CHECKING:
    from collections.abc import Iterator

    import onnx

#: the modules a ``.skops`` file may name types from (skops itself trusts builtins and plain containers)
_SKOPS_TRUSTED = ("sklearn.", "numpy.", "scipy.")
#: skl2onnx names the estimator it has no converter for as ``type '<class 'sklearn....KernelRidge'>'``
_UNSUPPORTED_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
_ML_OPSET = 3
#: how each file suffix is loaded (``.pkl`` and ``.pickle`` with pickle)
_FORMATS = {".skops": "skops", ".joblib": "joblib"}


def import_sklearn(source: str, options: ImportOptions) -> Imported:
    """Load a fitted estimator from a ``.pkl``, ``.pickle``, ``.joblib`` or ``.skops`` file and convert it."""
    require_sklearn()
    path = local_file(source)
    estimator = load_estimator(path, _FORMATS.get(path.suffix.lower(), "pickle"))
    return convert_estimator(estimator, source=source, options=options)


def local_file(source: str) -> Path:
    """The local regular file ``source`` names, or a :class:`ModelError` (URLs are refused)."""
    if URL_PATTERN.match(source):
        raise ModelError(f"'{source}' is a URL: download the model and pass its local path")
    path = Path(source)
    if not path.exists():
        raise ModelError(f"model file '{path}' does not exist: check the path", path=path)
    if not path.is_file():
        raise ModelError(f"'{path}' is not a regular file: pass the model file itself", path=path)
    return path


def load_estimator(path: Path, fmt: str) -> object:
    """Load a fitted estimator saved as ``fmt``: ``pickle`` (and ``cloudpickle``), ``joblib`` or ``skops``."""
    if fmt == "skops":
        estimator = _load_skops(path)
    else:
        try:
            if fmt == "joblib":
                import joblib  # type: ignore[import-untyped]  # ships with scikit-learn; untyped

                estimator = joblib.load(path)
            else:
                import pickle

                with path.open("rb") as fh:
                    estimator = pickle.load(fh)  # noqa: S301  (the module docstring warns: pickles run code)
        except Exception as exc:
            raise unpickling_error(path, exc) from exc
    _check_estimator(estimator, path)
    return estimator


def unpickling_error(path: Path, exc: Exception) -> ModelError:
    """A :class:`ModelError` that says why ``path`` could not be unpickled, and what to do."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.partition(".")[0]
        if top == "cloudpickle":
            return ModelError(
                f"'{path}' was saved with cloudpickle, which is not installed: pip install cloudpickle", path=path
            )
        if top == "sklearn":
            return ModelError(
                f"'{path}' needs module '{exc.name}', which this scikit-learn does not have: "
                "install the scikit-learn version the model was saved with",
                path=path,
            )
        return ModelError(
            f"'{path}' needs module '{exc.name}', which is not installed: "
            "install the package that defines the model's classes",
            path=path,
        )
    if isinstance(exc, AttributeError):
        return ModelError(
            f"'{path}' refers to a class that cannot be found ({_first_line(exc)}): "
            "define it in an importable module, not in the training script",
            path=path,
        )
    return ModelError(
        f"'{path}' cannot be unpickled ({type(exc).__name__}: {_first_line(exc)}): "
        "the file is truncated or corrupt, re-save the model",
        path=path,
    )


def _load_skops(path: Path) -> object:
    try:
        import skops.io
    except ImportError as exc:
        raise MissingExtraError("reading .skops models", "sklearn", "skops") from exc
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelError(
            f"'{path}' is not a readable skops file ({_first_line(exc)}): re-save the model", path=path
        ) from exc
    refused = [name for name in untrusted if not name.startswith(_SKOPS_TRUSTED)]
    if refused:
        raise ModelError(
            f"'{path}' holds types that are not from scikit-learn, NumPy or SciPy ({', '.join(refused)}): "
            "review them, and save the model as a .pkl file if you trust it",
            path=path,
        )
    try:
        return skops.io.load(path, trusted=untrusted)
    except Exception as exc:
        raise unpickling_error(path, exc) from exc


def _check_estimator(estimator: object, path: Path) -> None:
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        cls = type(estimator)
        name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
        raise ModelError(
            f"'{path}' holds a {name}, not a scikit-learn estimator: save the fitted estimator itself", path=path
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise ModelError(
            f"'{path}' holds a {type(estimator).__name__} that is not fitted: save it after calling fit()", path=path
        ) from exc


def convert_estimator(
    estimator: Any,  # noqa: ANN401  (any fitted scikit-learn estimator)
    *,
    source: str,
    options: ImportOptions,
    kind: Kind = "sklearn",
    n_features: int | None = None,
) -> Imported:
    """Convert a fitted estimator with skl2onnx: one float32 input, and no ZipMap for a classifier.

    ``n_features`` is the feature count another source gives (an MLflow signature), used when the
    estimator has no ``n_features_in_``; ``options.input_shapes`` may give it too, and a name for the input.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    input_name, features = _input(estimator, options, n_features)
    classifier = is_classifier(estimator)
    try:
        with _bool_attributes_as_ints():
            model: onnx.ModelProto = convert_sklearn(
                estimator,
                initial_types=[(input_name, FloatTensorType([None, features]))],
                options={id(estimator): {"zipmap": False}} if classifier else None,
                target_opset={"": options.opset or DEFAULT_OPSET, "ai.onnx.ml": _ML_OPSET},
            )
    except Exception as exc:
        raise _conversion_error(estimator, exc) from exc
    notes = [f"input '{input_name}' is float32 [N, {features}]; scikit-learn computes in float64"]
    labels = None
    if classifier:
        classes = getattr(estimator, "classes_", None)
        if classes is not None and getattr(classes, "ndim", 0) == 1:  # not for a multi-output classifier
            labels = tuple(str(c) for c in classes)
        notes.append("classifier outputs: 'label' and 'probabilities' (no ZipMap)")
    columns = getattr(estimator, "feature_names_in_", None)
    feature_names = None if columns is None else tuple(str(c) for c in columns)
    if feature_names:
        notes.append(f"fitted on a DataFrame: '{input_name}' takes its {features} columns in feature_names order")
    return Imported(kind, source, model=model, labels=labels, feature_names=feature_names, notes=tuple(notes))


def _input(estimator: object, options: ImportOptions, n_features: int | None) -> tuple[str, int]:
    """The input's name and feature count: from the estimator, ``n_features``, or ``--input-shape``."""
    given: tuple[str, int] | None = None
    if options.input_shapes:
        if len(options.input_shapes) != 1 or len(options.input_shapes[0][1]) != 2:  # noqa: PLR2004  ([N, F])
            raise ConfigError("a scikit-learn model takes one input of shape [N, F]: pass --input-shape input=1,F")
        name, dims = options.input_shapes[0]
        given = (name, dims[1])
    features = getattr(estimator, "n_features_in_", None) or n_features
    if features is None:
        if given is None:
            raise ModelError(
                f"{type(estimator).__name__} does not say how many features it takes: pass --input-shape input=1,F"
            )
        return given
    if given is not None and given[1] != features:
        raise ConfigError(
            f"--input-shape gives {given[1]} features but the model takes {features}: fix or drop --input-shape"
        )
    return (given[0] if given else "input"), int(features)


def _conversion_error(estimator: object, exc: Exception) -> ModelError:
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    top = type(estimator).__name__
    if isinstance(exc, (MissingShapeCalculator, MissingConverter)):
        found = _UNSUPPORTED_CLASS.search(str(exc))
        name = found.group(1) if found else top
        where = f" (in the {top})" if name != top else ""
        return ModelError(
            f"{name}{where} is not supported by skl2onnx: use an estimator it converts, "
            "or export the model to ONNX yourself and pass the .onnx file"
        )
    return ModelError(
        f"skl2onnx could not convert the {top} ({type(exc).__name__}: {_first_line(exc)}): "
        "export the model to ONNX yourself and pass the .onnx file"
    )


@contextmanager
def _bool_attributes_as_ints() -> Iterator[None]:
    """While converting, let ``onnx.helper.make_attribute`` take lists holding bools.

    skl2onnx's tree converters (HistGradientBoosting's ``nodes_missing_value_tracks_true``) pass a
    list mixing Python bools and NumPy integers; protobuf 7 refuses a bool in a repeated int field
    ("Expected an int, got a boolean") where older protobuf took it as 0/1. So, only during the
    conversion, such a list is made of ints; the original function is put back in ``finally``.
    """
    import numpy as np
    import onnx.helper

    original = onnx.helper.make_attribute

    def make_attribute(key: str, value: Any, *args: Any, **kwargs: Any) -> onnx.AttributeProto:  # noqa: ANN401
        if isinstance(value, np.ndarray) and value.dtype == np.bool_:
            value = value.astype(np.int64)
        elif (
            isinstance(value, (list, tuple))
            and any(isinstance(v, (bool, np.bool_)) for v in value)
            and all(isinstance(v, (int, np.integer, np.bool_)) for v in value)
        ):
            value = [int(v) for v in value]
        return original(key, value, *args, **kwargs)

    onnx.helper.make_attribute = make_attribute
    try:
        yield
    finally:
        onnx.helper.make_attribute = original


def require_sklearn() -> None:
    """Raise :class:`MissingExtraError` unless scikit-learn and skl2onnx are installed."""
    try:
        import skl2onnx  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("importing scikit-learn models", "sklearn", "skl2onnx") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
