"""MLflow importer: real model folders written by mlflow (which edgekit itself never imports)."""

from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from skl2onnx import to_onnx
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from edgekit.errors import ModelError
from edgekit.importers import ImportOptions, detect, import_model
from edgekit.importers.mlflow import import_mlflow

pytestmark = [
    # mlflow's own import (its pyfunc type hints), not ours to fix
    pytest.mark.filterwarnings(r"ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

SPECIES = np.array(["setosa", "versicolor", "virginica"])


@pytest.fixture(scope="module")
def mlflow():
    """mlflow with its sklearn and onnx flavors, imported once (about 2 s)."""
    import mlflow  # a test dependency only: edgekit never imports it
    import mlflow.onnx
    import mlflow.sklearn

    return mlflow


@pytest.fixture(scope="module")
def iris_frame():
    frame, y = load_iris(return_X_y=True, as_frame=True)
    return frame, SPECIES[y]  # string labels: infer_signature warns about integer columns


@pytest.fixture(scope="module")
def classifier(iris_frame):
    return LogisticRegression(max_iter=1000).fit(*iris_frame)


@pytest.fixture(scope="module")
def folders(mlflow, tmp_path_factory, iris_frame, classifier):
    """Real folders: the default (skops), cloudpickle and pickle formats, a tensor signature, no signature, onnx."""
    root = tmp_path_factory.mktemp("mlflow")
    frame, y = iris_frame
    columns = mlflow.models.infer_signature(frame, y)
    x, target = load_diabetes(return_X_y=True)
    regressor = LinearRegression().fit(x, target)
    regressor_no_count = LinearRegression().fit(x, target)
    del regressor_no_count.n_features_in_  # the tensor signature has to give the feature count
    tensors = mlflow.models.infer_signature(x, target)
    save = mlflow.sklearn.save_model
    save(classifier, root / "skops", signature=columns, pip_requirements=[])
    save(classifier, root / "cloudpickle", serialization_format="cloudpickle", signature=columns, pip_requirements=[])
    save(regressor, root / "pickle", serialization_format="pickle", signature=tensors, pip_requirements=[])
    save(regressor_no_count, root / "no_count", serialization_format="pickle", signature=tensors, pip_requirements=[])
    save(classifier, root / "unsigned", pip_requirements=[])
    onnx_model = to_onnx(regressor, x[:1].astype(np.float32), target_opset=17)
    mlflow.onnx.save_model(onnx_model, root / "onnx", pip_requirements=[])
    return {"root": root, "x": x, "target": target, "regressor": regressor}


def run(imported, x):
    session = ort.InferenceSession(imported.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})


def edited_copy(folder, tmp_path, edit):
    """A copy of ``folder`` whose MLmodel went through ``edit(spec)``."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    spec = yaml.safe_load((copy / "MLmodel").read_text())
    edit(spec)
    (copy / "MLmodel").write_text(yaml.safe_dump(spec))
    return copy


@pytest.mark.parametrize("fmt", ["skops", "cloudpickle"])
def test_sklearn_flavor_with_column_signature(fmt, folders, iris_frame, classifier):
    folder = folders["root"] / fmt
    assert detect(str(folder)) == "mlflow"
    imported = import_model(str(folder))
    frame, _ = iris_frame
    assert imported.kind == "mlflow"
    assert imported.labels == tuple(SPECIES)
    assert imported.feature_names == tuple(frame.columns)
    assert imported.notes[:2] == (
        "MLflow sklearn flavor",
        f"loaded {'model.skops' if fmt == 'skops' else 'model.pkl'} ({fmt})",
    )
    label, probabilities = run(imported, frame)
    as_float32 = frame.astype(np.float32)
    assert list(label) == list(classifier.predict(as_float32))
    np.testing.assert_allclose(probabilities, classifier.predict_proba(as_float32), atol=1e-5)


@pytest.mark.parametrize("name", ["pickle", "no_count"])
def test_sklearn_flavor_with_tensor_signature(name, folders):
    imported = import_mlflow(str(folders["root"] / name / "MLmodel"), ImportOptions())  # the MLmodel file works too
    assert imported.labels is None
    assert imported.feature_names is None
    (out,) = run(imported, folders["x"])
    expected = folders["regressor"].predict(folders["x"].astype(np.float32))
    np.testing.assert_allclose(out.ravel(), expected, rtol=0, atol=1e-5 * np.ptp(folders["target"]))


def test_sklearn_flavor_without_signature(folders):
    imported = import_mlflow(str(folders["root"] / "unsigned"), ImportOptions())
    assert imported.feature_names == tuple(load_iris(as_frame=True).data.columns)  # from the estimator itself
    assert imported.labels == tuple(SPECIES)


def test_onnx_flavor(folders):
    imported = import_mlflow(str(folders["root"] / "onnx"), ImportOptions())
    assert imported.notes == ("MLflow onnx flavor",)
    (out,) = run(imported, folders["x"])
    expected = folders["regressor"].predict(folders["x"].astype(np.float32))
    np.testing.assert_allclose(out.ravel(), expected, rtol=0, atol=1e-5 * np.ptp(folders["target"]))


def test_pytorch_flavor_pickled_module(mlflow, tmp_path):
    import mlflow.pytorch  # registers the flavor
    import torch

    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    signature = mlflow.models.infer_signature(x, expected)
    folder = tmp_path / "torch"
    mlflow.pytorch.save_model(module, folder, serialization_format="pickle", signature=signature, pip_requirements=[])
    assert (folder / "data" / "model.pth").is_file()
    imported = import_mlflow(str(folder), ImportOptions())
    assert imported.kind == "mlflow"
    assert imported.notes[0] == "MLflow pytorch flavor"
    (out,) = run(imported, x)  # the batch axis is dynamic: the signature's -1 was only traced as 1
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_missing_mlmodel(tmp_path):
    with pytest.raises(ModelError, match=r"MLmodel' does not exist: pass an MLflow model folder"):
        import_mlflow(str(tmp_path), ImportOptions())


def test_uri():
    with pytest.raises(ModelError, match="is a URI: download the model first"):
        import_mlflow("runs:/0123abcd/model", ImportOptions())


def test_malformed_yaml(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors: [sklearn:\n  - {")
    with pytest.raises(ModelError, match="MLmodel' is not a readable MLmodel file"):
        import_mlflow(str(tmp_path), ImportOptions())


def test_missing_model_file(folders, tmp_path):
    copy = tmp_path / "skops"
    shutil.copytree(folders["root"] / "skops", copy)
    (copy / "model.skops").unlink()
    with pytest.raises(ModelError, match=r"model file '.*model\.skops' named in .* does not exist") as info:
        import_mlflow(str(copy), ImportOptions())
    assert info.value.path == copy / "model.skops"


def test_unsupported_flavor(folders, tmp_path):
    copy = edited_copy(folders["root"] / "skops", tmp_path, lambda spec: spec["flavors"].pop("sklearn"))
    with pytest.raises(ModelError, match="has flavors python_function; edgekit imports onnx, sklearn, pytorch"):
        import_mlflow(str(copy), ImportOptions())


def test_signature_that_disagrees_with_the_estimator(folders, tmp_path):
    def three_columns(spec):
        spec["signature"]["inputs"] = (
            '[{"type": "double", "name": "a"}, {"type": "double", "name": "b"}, {"type": "double", "name": "c"}]'
        )

    copy = edited_copy(folders["root"] / "skops", tmp_path, three_columns)
    with pytest.raises(ModelError, match="signature has 3 input features but the estimator was fitted on 4"):
        import_mlflow(str(copy), ImportOptions())


def test_string_column(folders, tmp_path):
    def with_string(spec):
        spec["signature"]["inputs"] = '[{"type": "string", "name": "species"}, {"type": "double", "name": "x"}]'

    copy = edited_copy(folders["root"] / "skops", tmp_path, with_string)
    with pytest.raises(ModelError, match=r"columns that are not numbers \(species\)"):
        import_mlflow(str(copy), ImportOptions())


def test_unreadable_signature(folders, tmp_path):
    def broken(spec):
        spec["signature"]["inputs"] = "[{not json"

    copy = edited_copy(folders["root"] / "skops", tmp_path, broken)
    with pytest.raises(ModelError, match="has a signature that cannot be read"):
        import_mlflow(str(copy), ImportOptions())
