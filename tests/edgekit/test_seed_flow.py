"""The seed's own flow, end to end: a scikit-learn model saved the way users save it becomes a bundle whose
predictions, run from the bundle by ONNX Runtime, match scikit-learn's."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit_runtime.bundle import open_bundle

runner = CliRunner()
FAST = ["--max-eval-samples", "64", "--timing", "0.2"]


def fitted(kind):
    if kind == "linear-regression":
        x, y = load_diabetes(return_X_y=True)
        model = LinearRegression()
    else:
        x, y = load_iris(return_X_y=True)
        model = {
            "logistic-regression": LogisticRegression(max_iter=1000),
            "random-forest": RandomForestClassifier(n_estimators=20, random_state=0),
            "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        }[kind]
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        model.fit(x, y)
    return model, x, y


def saved(model, x, y, folder):
    """The seed's way: ``pickle.dump`` the estimator; the test data beside it."""
    path = folder / "model.pkl"
    with path.open("wb") as fh:
        pickle.dump(model, fh)
    np.savez(folder / "eval.npz", input=x, label=y)
    return path, folder / "eval.npz"


def run_bundle(path, x):
    bundle = open_bundle(path)
    session = ort.InferenceSession(bundle.read("model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {bundle.manifest["inputs"][0]["name"]: x})
    return bundle, dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))


def check_matches(model, x, outputs):
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(outputs["label"], model.predict(x))
        np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(x), atol=1e-5, rtol=0)
    else:
        (prediction,) = outputs.values()
        expected = model.predict(x)
        scale = float(np.ptp(expected))
        np.testing.assert_allclose(prediction.ravel(), expected, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("kind", ["logistic-regression", "linear-regression", "random-forest", "pipeline"])
def test_a_pickled_estimator_becomes_a_bundle_that_predicts_the_same(kind, tmp_path):
    model, x, y = fitted(kind)
    path, evaluation = saved(model, x, y, tmp_path)
    result = runner.invoke(app, ["bundle", "pack", str(path), "--eval", str(evaluation), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bundle, outputs = run_bundle(tmp_path / "model-1.0.0.edgebundle", x)
    check_matches(model, x, outputs)
    if hasattr(model, "classes_"):
        assert bundle.manifest["labels"] == [str(c) for c in model.classes_]
    assert bundle.manifest["source"] == {"kind": "sklearn", "file": "model.pkl"}
    assert not any(name.endswith(".pkl") for name in bundle.members)  # never ship a pickle


@pytest.mark.parametrize("kind", ["logistic-regression", "random-forest"])
def test_compress_takes_a_pickle_directly(kind, tmp_path):
    model, x, y = fitted(kind)
    path, evaluation = saved(model, x, y, tmp_path)
    out = tmp_path / "out"
    args = ["compress", str(path), "--eval", str(evaluation), "-o", str(out), *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle, outputs = run_bundle(out / "model-1.0.0.edgebundle", x)
    # linear models and tree ensembles keep their weights in node attributes: nothing to quantize, FP32 is written
    assert "no candidate applies to this model" in result.stdout
    assert bundle.manifest["compression"]["chosen"] == "fp32"
    assert bundle.manifest["compression"]["budget"]["met"] is True
    check_matches(model, x, outputs)


@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")  # mlflow's, on import
def test_an_mlflow_folder_becomes_a_bundle_that_predicts_the_same(tmp_path):
    import mlflow.sklearn  # a test dependency only; edgekit never imports it
    from mlflow.models import infer_signature

    model, x, _ = fitted("pipeline")
    folder = tmp_path / "mlmodel"
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(x, model.predict(x)), pip_requirements=[])
    result = runner.invoke(app, ["bundle", "pack", str(folder), "--name", "iris", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bundle, outputs = run_bundle(tmp_path / "iris-1.0.0.edgebundle", x)
    check_matches(model, x, outputs)
    assert bundle.manifest["source"]["kind"] == "mlflow"
