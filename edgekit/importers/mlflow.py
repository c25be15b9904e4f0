"""MLflow model folders, read from their ``MLmodel`` file (PyYAML) without importing mlflow.

One flavor is imported, the first of::

    onnx     flavors.onnx.data                  model.onnx, read as is
    sklearn  flavors.sklearn.pickled_model      model.skops (MLflow 3's default), or model.pkl saved
                                                with pickle or cloudpickle; converted with skl2onnx
    pytorch  flavors.pytorch.model_data (data/) model.pt2 (MLflow 3's default: an ExportedProgram), or
                                                model.pth (a whole nn.Module saved with torch.save)

**A pickle, cloudpickle or ``model.pth`` file runs code when it is loaded**: import only models you trust.

The signature's inputs give the feature names and count: named columns (a model logged with a
DataFrame) or tensor specs, whose shapes (``-1`` read as 1) are a PyTorch model's example inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import MissingExtraError, ModelError
from edgekit.importers.base import MLMODEL_FILE, URL_PATTERN, Imported, ImportOptions
from edgekit.importers.sklearn import convert_estimator, load_estimator, require_sklearn, unpickling_error
from edgekit.model_io import load_model

if TYPE_CHECKING:
    import torch

SUPPORTED_FLAVORS = ("onnx", "sklearn", "pytorch")
_SKLEARN_FORMATS = frozenset({"skops", "pickle", "cloudpickle"})
#: MLflow's column types that are not numbers: such a column cannot be part of one float tensor
_NON_NUMERIC = frozenset({"string", "binary", "datetime"})


@dataclass(frozen=True)
class Signature:
    """What an MLmodel's ``signature.inputs`` says about the model's input."""

    #: column names (a column-based signature) or tensor names, when every input has one
    feature_names: tuple[str, ...] | None = None
    #: the number of columns, or the last axis of a single 2-D tensor
    n_features: int | None = None
    #: example input shapes, ``-1`` read as 1 (columns are one ``[1, n]`` input)
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: names of columns that are not numbers (strings, bytes, dates)
    non_numeric: tuple[str, ...] = ()


def import_mlflow(source: str, options: ImportOptions) -> Imported:
    """Import the model of an MLflow folder (or of its ``MLmodel`` file) by its flavor."""
    if URL_PATTERN.match(source):
        raise ModelError(
            f"'{source}' is a URI: download the model first "
            "(mlflow artifacts download --artifact-uri URI --dst-path DIR) and pass the folder"
        )
    path = Path(source)
    mlmodel = path if path.name == MLMODEL_FILE else path / MLMODEL_FILE
    spec = _read_mlmodel(mlmodel)
    flavors = spec.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise ModelError(f"'{mlmodel}' lists no flavors: save the model with mlflow.<flavor>.save_model", path=mlmodel)
    found = [name for name in SUPPORTED_FLAVORS if name in flavors]
    if not found:
        raise ModelError(
            f"'{mlmodel}' has flavors {', '.join(map(str, flavors))}; edgekit imports {', '.join(SUPPORTED_FLAVORS)}: "
            "log the model with one of those",
            path=mlmodel,
        )
    flavor = found[0]
    conf = flavors[flavor]
    if not isinstance(conf, dict):
        raise ModelError(f"'{mlmodel}' has an empty {flavor} flavor: save the model again", path=mlmodel)
    signature = read_signature(spec, mlmodel)
    if flavor == "onnx":
        imported = Imported("mlflow", source, model=load_model(_member(conf, "data", mlmodel)).model)
    elif flavor == "sklearn":
        imported = _import_sklearn(conf, signature=signature, options=options, mlmodel=mlmodel, source=source)
    else:
        imported = _import_pytorch(conf, signature=signature, options=options, mlmodel=mlmodel, source=source)
    return replace(
        imported,
        kind="mlflow",
        source=source,
        feature_names=imported.feature_names or signature.feature_names,
        notes=(f"MLflow {flavor} flavor", *imported.notes),
    )


def read_signature(spec: dict[str, Any], mlmodel: Path) -> Signature:
    """The input part of the MLmodel's signature; an empty :class:`Signature` when there is none."""
    signature = spec.get("signature")
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return Signature()
    try:
        inputs = json.loads(signature["inputs"])
        tensors = [item for item in inputs if item["type"] == "tensor"]
        if not tensors:
            names = tuple(str(item["name"]) for item in inputs if "name" in item)
            return Signature(
                feature_names=names if len(names) == len(inputs) else None,
                n_features=len(inputs),
                shapes=(("input", (1, len(inputs))),),
                non_numeric=tuple(str(item.get("name", "?")) for item in inputs if item["type"] in _NON_NUMERIC),
            )
        shapes = tuple(
            (
                str(item.get("name", "input" if len(tensors) == 1 else f"input_{index}")),
                tuple(1 if int(dim) == -1 else int(dim) for dim in item["tensor-spec"]["shape"]),
            )
            for index, item in enumerate(tensors)
        )
    except (TypeError, KeyError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(
            f"'{mlmodel}' has a signature that cannot be read ({type(exc).__name__}: {exc}): "
            "log the model again with mlflow.models.infer_signature",
            path=mlmodel,
        ) from exc
    names = tuple(str(item["name"]) for item in tensors if "name" in item)
    two_d = len(shapes) == 1 and len(shapes[0][1]) == 2  # noqa: PLR2004  ([N, F])
    return Signature(
        feature_names=names if len(names) == len(tensors) else None,
        n_features=shapes[0][1][1] if two_d else None,
        shapes=shapes,
    )


def _read_mlmodel(mlmodel: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as exc:
        raise MissingExtraError("reading MLflow models", "mlflow", "pyyaml") from exc
    if not mlmodel.is_file():
        raise ModelError(
            f"'{mlmodel}' does not exist: pass an MLflow model folder (the one holding {MLMODEL_FILE})", path=mlmodel
        )
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ModelError(
            f"'{mlmodel}' is not a readable MLmodel file ({problem}): save the model again", path=mlmodel
        ) from exc
    if not isinstance(spec, dict):
        raise ModelError(f"'{mlmodel}' is not an MLmodel file (no flavors): save the model again", path=mlmodel)
    return spec


def _member(conf: dict[str, Any], key: str, mlmodel: Path) -> Path:
    """The path ``conf[key]`` names in the model folder; it must exist and stay inside the folder."""
    folder = mlmodel.parent
    name = conf.get(key)
    if not isinstance(name, str) or not name:
        raise ModelError(f"'{mlmodel}' does not say where the model is (no '{key}'): save it again", path=mlmodel)
    path = folder / name
    if folder.resolve() not in path.resolve().parents:
        raise ModelError(f"'{mlmodel}' points outside its folder ('{name}'): save the model again", path=mlmodel)
    if not path.exists():
        raise ModelError(f"model file '{path}' named in '{mlmodel}' does not exist: copy the whole folder", path=path)
    return path


def _import_sklearn(
    conf: dict[str, Any], *, signature: Signature, options: ImportOptions, mlmodel: Path, source: str
) -> Imported:
    require_sklearn()
    path = _member(conf, "pickled_model", mlmodel)
    fmt = str(conf.get("serialization_format") or ("skops" if path.suffix == ".skops" else "cloudpickle"))
    if fmt not in _SKLEARN_FORMATS:
        raise ModelError(
            f"'{mlmodel}' has serialization_format '{fmt}'; edgekit reads {', '.join(sorted(_SKLEARN_FORMATS))}: "
            "save the model again with one of those",
            path=mlmodel,
        )
    if signature.non_numeric:
        raise ModelError(
            f"'{mlmodel}' has columns that are not numbers ({', '.join(signature.non_numeric)}): edgekit converts "
            "an estimator to one float32 input; encode them before the model, or export it to ONNX yourself",
            path=mlmodel,
        )
    estimator = load_estimator(path, fmt)
    fitted = getattr(estimator, "n_features_in_", None)
    if fitted is not None and signature.n_features is not None and fitted != signature.n_features:
        raise ModelError(
            f"'{mlmodel}' signature has {signature.n_features} input features but the estimator was fitted on "
            f"{fitted}: log the model again with a signature inferred from its training data",
            path=mlmodel,
        )
    imported = convert_estimator(
        estimator, source=source, options=options, kind="mlflow", n_features=signature.n_features
    )
    return replace(imported, notes=(f"loaded {path.name} ({fmt})", *imported.notes))


def _import_pytorch(
    conf: dict[str, Any], *, signature: Signature, options: ImportOptions, mlmodel: Path, source: str
) -> Imported:
    # lazy: torch is imported only for a pytorch flavor
    from edgekit.importers.torch import import_torch, import_torch_module

    data = _member({"model_data": "data", **conf}, "model_data", mlmodel)
    if (data / "model.pt2").is_file():  # the ExportedProgram keeps its own shapes
        return import_torch(str(data / "model.pt2"), options)
    pth = data / "model.pth" if data.is_dir() else data
    if not pth.is_file():
        raise ModelError(f"'{data}' holds neither model.pt2 nor model.pth: save the model again", path=data)
    if not options.input_shapes and signature.shapes:
        options = replace(options, input_shapes=signature.shapes)
    return import_torch_module(_load_torch_module(pth), options, source=source)


def _load_torch_module(path: Path) -> torch.nn.Module:
    """``torch.load`` a whole module: like a pickle, this runs code from the file."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("importing MLflow PyTorch models", "torch", "torch") from exc
    try:
        module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise unpickling_error(path, exc) from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelError(
            f"'{path}' holds a {type(module).__name__}, not a torch.nn.Module: log the module with mlflow.pytorch",
            path=path,
        )
    return module
