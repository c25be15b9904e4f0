"""scikit-learn importer: real estimators, saved the ways users save them, run with ONNX Runtime."""

from __future__ import annotations

import pickle
import sys

import joblib
import numpy as np
import onnx.helper
import onnxruntime as ort
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from edgekit.errors import ConfigError, MissingExtraError, ModelError
from edgekit.importers import ImportOptions, import_model
from edgekit.importers.sklearn import import_sklearn

CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=1000),
    "forest": lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    "tree": lambda: DecisionTreeClassifier(random_state=0),
    "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=10, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
    "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier((16,), solver="lbfgs", max_iter=1000, random_state=0)),
}
REGRESSORS = {
    "linear": LinearRegression,
    "tree": lambda: DecisionTreeRegressor(max_depth=5, random_state=0),
    "forest": lambda: RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0),
    "gradient_boosting": lambda: GradientBoostingRegressor(n_estimators=10, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(max_iter=10, random_state=0),
}


def f32(x):
    return np.asarray(x, dtype=np.float32)


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return f32(x), y


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return f32(x), y


@pytest.fixture(scope="module")
def diabetes():
    x, y = load_diabetes(return_X_y=True)
    return f32(x), y


@pytest.fixture(scope="module")
def pickles(tmp_path_factory):
    """Pickle a fitted estimator to a fresh file and give its path."""
    folder = tmp_path_factory.mktemp("pickles")

    def write(model, name="model.pkl"):
        path = folder / name
        with path.open("wb") as fh:
            pickle.dump(model, fh)
        return path

    return write


def run(imported, x):
    session = ort.InferenceSession(imported.model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    return dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))


def assert_classifier_matches(imported, model, x):
    out = run(imported, x)
    np.testing.assert_array_equal(out["label"], model.predict(x))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), atol=1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_matches_sklearn(name, iris, cancer, pickles):
    x, y = cancer if name == "pipeline" else iris
    model = CLASSIFIERS[name]().fit(x, y)
    imported = import_sklearn(str(pickles(model, f"{name}.pkl")), ImportOptions())
    assert imported.kind == "sklearn"
    assert imported.labels == tuple(str(c) for c in model.classes_)
    assert imported.feature_names is None
    assert [o.name for o in imported.model.graph.output] == ["label", "probabilities"]
    assert_classifier_matches(imported, model, x)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_matches_sklearn(name, diabetes, pickles):
    x, y = diabetes
    model = REGRESSORS[name]().fit(x, y)
    imported = import_sklearn(str(pickles(model, f"{name}.pkl")), ImportOptions())
    assert imported.labels is None
    out = run(imported, x)["variable"]
    np.testing.assert_allclose(out.ravel(), model.predict(x), rtol=0, atol=1e-5 * np.ptp(y))


def test_hist_gradient_boosting_restores_make_attribute(iris, pickles):
    # the protobuf 7 workaround patches onnx.helper.make_attribute during conversion only
    original = onnx.helper.make_attribute
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(*iris)
    assert_classifier_matches(import_sklearn(str(pickles(model)), ImportOptions()), model, iris[0])
    assert onnx.helper.make_attribute is original


def test_string_labels(iris, pickles):
    x, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, names)
    imported = import_sklearn(str(pickles(model)), ImportOptions())
    assert imported.labels == ("setosa", "versicolor", "virginica")
    labels = run(imported, x)["label"]
    assert labels.dtype == object
    assert list(labels) == list(model.predict(x))


def test_feature_names_from_a_dataframe(pickles):
    frame, y = load_iris(return_X_y=True, as_frame=True)
    frame = frame.astype(np.float32)
    model = LogisticRegression(max_iter=1000).fit(frame, y)
    imported = import_sklearn(str(pickles(model)), ImportOptions())
    assert imported.feature_names == tuple(frame.columns)
    assert any("DataFrame" in note for note in imported.notes)
    out = run(imported, frame.to_numpy())  # one float tensor, columns in feature_names order
    np.testing.assert_array_equal(out["label"], model.predict(pd.DataFrame(frame)))


def test_joblib_file(iris, tmp_path):
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(*iris)
    joblib.dump(model, tmp_path / "model.joblib")
    assert_classifier_matches(import_model(str(tmp_path / "model.joblib")), model, iris[0])


def test_skops_file(iris, tmp_path):
    # a tree's nodes are a type skops does not trust by default: edgekit trusts it, as a scikit-learn type
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(*iris)
    skops.io.dump(model, tmp_path / "model.skops")
    assert_classifier_matches(import_model(str(tmp_path / "model.skops")), model, iris[0])


def double(x):
    return x * 2


def test_skops_file_with_untrusted_types(iris, tmp_path):
    model = make_pipeline(FunctionTransformer(double), LogisticRegression(max_iter=1000)).fit(*iris)
    skops.io.dump(model, tmp_path / "model.skops")
    with pytest.raises(ModelError, match=r"not from scikit-learn, NumPy or SciPy \(.*test_sklearn\.double\)"):
        import_sklearn(str(tmp_path / "model.skops"), ImportOptions())


def test_input_shape_names_the_input_and_gives_missing_feature_count(diabetes, pickles):
    model = LinearRegression().fit(*diabetes)
    del model.n_features_in_
    path = str(pickles(model))
    with pytest.raises(ModelError, match=r"does not say how many features .* --input-shape input=1,F"):
        import_sklearn(path, ImportOptions())
    imported = import_sklearn(path, ImportOptions(input_shapes=(("x", (1, 10)),)))
    assert [i.name for i in imported.model.graph.input] == ["x"]
    assert run(imported, diabetes[0])["variable"].shape == (len(diabetes[0]), 1)


def test_input_shape_that_disagrees(diabetes, pickles):
    path = str(pickles(LinearRegression().fit(*diabetes)))
    with pytest.raises(ConfigError, match="gives 4 features but the model takes 10"):
        import_sklearn(path, ImportOptions(input_shapes=(("input", (1, 4)),)))


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"'.*nope\.pkl' does not exist") as info:
        import_sklearn(str(tmp_path / "nope.pkl"), ImportOptions())
    assert info.value.path == tmp_path / "nope.pkl"


@pytest.mark.parametrize("url", ["s3://bucket/model.pkl", "https://example.com/model.pkl"])
def test_url(url):
    with pytest.raises(ModelError, match="is a URL: download the model"):
        import_sklearn(url, ImportOptions())


def test_corrupt_pickle(iris, tmp_path):
    data = pickle.dumps(LogisticRegression(max_iter=1000).fit(*iris))
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cannot be unpickled .*truncated or corrupt") as info:
        import_sklearn(str(path), ImportOptions())
    assert info.value.__cause__ is not None


def test_pickle_of_a_class_whose_module_is_missing(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04cno_such_module_xyz\nModel\n)\x81.")  # GLOBAL, EMPTY_TUPLE, NEWOBJ, STOP
    with pytest.raises(ModelError, match="needs module 'no_such_module_xyz', which is not installed"):
        import_sklearn(str(path), ImportOptions())


def test_cloudpickle_missing(tmp_path, monkeypatch):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04ccloudpickle\nload\n.")
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import cloudpickle -> ModuleNotFoundError
    with pytest.raises(ModelError, match="pip install cloudpickle"):
        import_sklearn(str(path), ImportOptions())


def test_pickle_of_a_dict(pickles):
    with pytest.raises(ModelError, match="holds a dict, not a scikit-learn estimator"):
        import_sklearn(str(pickles({"coef": [1.0]})), ImportOptions())


def test_unfitted_estimator(pickles):
    with pytest.raises(ModelError, match="holds a LogisticRegression that is not fitted"):
        import_sklearn(str(pickles(LogisticRegression())), ImportOptions())


def test_unsupported_estimator(diabetes, pickles):
    model = make_pipeline(StandardScaler(), KernelRidge()).fit(*diabetes)
    with pytest.raises(ModelError, match=r"KernelRidge \(in the Pipeline\) is not supported by skl2onnx"):
        import_sklearn(str(pickles(model)), ImportOptions())


def test_skl2onnx_not_installed(monkeypatch, pickles):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(MissingExtraError, match=r"needs skl2onnx: pip install 'edgekit\[sklearn\]'"):
        import_sklearn(str(pickles(LinearRegression())), ImportOptions())
