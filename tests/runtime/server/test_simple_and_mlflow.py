"""The seed's ``/predict`` and MLflow's ``/invocations`` give what ONNX Runtime gives, and fail in their own forms."""

from __future__ import annotations

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from edgekit_runtime import load
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings

from .conftest import DIGITS, asgi

X = np.load(DIGITS / "mlp_test.npz")["input"][:6].astype(np.float32)
FEATURES = [f"px{i}" for i in range(64)]


@pytest.fixture(scope="module")
def want():
    session = ort.InferenceSession(str(DIGITS / "mlp.onnx"), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(["label", "probabilities"], {"input": X})
    return {"label": label, "probabilities": probabilities}


@pytest.fixture(scope="module")
def http(mlp_server):
    with httpx.Client(base_url=mlp_server.url, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def named_app():
    """The MLP with feature names in its manifest, as a model fitted on a DataFrame has (in-process)."""
    model = load(DIGITS / "mlp.onnx")
    model.manifest = {"inputs": [{"name": "input", "features": FEATURES}]}
    app = create_app(model, ServerSettings(port=0, concurrency=1))
    yield app
    app.close()


def test_predict_takes_the_seeds_features(http, want):
    response = http.post("/predict", json={"features": X.tolist()})
    assert response.status_code == 200
    assert response.json()["prediction"] == want["label"].tolist()
    np.testing.assert_allclose(response.json()["probabilities"], want["probabilities"], rtol=1e-6, atol=1e-7)


def test_predict_takes_one_flat_row_as_one_sample(http, want):
    response = http.post("/predict", json={"features": X[2].tolist()})
    assert response.status_code == 200
    assert response.json()["prediction"] == [want["label"][2]]


def test_predict_of_a_model_that_is_no_classifier_gives_its_first_output():
    cnn = create_app(load(DIGITS / "cnn.onnx"), ServerSettings(port=0, concurrency=1))
    images = np.load(DIGITS / "cnn_test.npz")["input"][:2].astype(np.float32)
    session = ort.InferenceSession(str(DIGITS / "cnn.onnx"), providers=["CPUExecutionProvider"])
    try:
        response = asgi(cnn, "POST", "/predict", json={"features": images[0].tolist()})  # one sample, no batch axis
    finally:
        cnn.close()
    assert response.status_code == 200
    np.testing.assert_allclose(response.json()["prediction"], session.run(None, {"input": images[:1]})[0], rtol=1e-5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rows": [[1.0] * 64]}, 'body must be a JSON object {"features"'),
        ({"features": [[1.0] * 63]}, r"expects shape [batch, 64] (float32), got [1, 63]"),
        ({"features": [[1.0] * 64, [1.0]]}, "not a rectangular array"),
        ({"features": [["a"] * 64]}, "expects float32 values, got strings"),
    ],
)
def test_predict_errors_say_what_was_expected(http, body, message):
    response = http.post("/predict", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_predict_refuses_bodies_that_are_not_json(http):
    response = http.post(
        "/predict", content=b"features=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert "send Content-Type: application/json" in response.json()["error"]
    response = http.post("/predict", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not valid JSON: ")


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": [f"c{i}" for i in range(64)], "data": X.tolist()}},
        {"dataframe_split": {"data": X.tolist()}},
        {"dataframe_records": [{f"c{i}": float(v) for i, v in enumerate(row)} for row in X]},
        {"instances": X.tolist()},
        {"instances": [{"input": row.tolist()} for row in X]},
        {"inputs": X.tolist()},
        {"inputs": {"input": X.tolist()}, "params": {"ignored": True}},
    ],
    ids=["split", "split-no-columns", "records", "instances", "instances-by-name", "inputs", "inputs-by-name"],
)
def test_invocations_in_every_mlflow_form(http, want, body):
    response = http.post("/invocations", json=body)
    assert response.status_code == 200
    assert response.json() == {"predictions": want["label"].tolist()}


def test_ping_and_health_answer_like_mlflow(http):
    for path in ("/ping", "/health"):
        response = http.get(path)
        assert response.status_code == 200
        assert response.content == b"\n"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"data": [[1.0] * 64]}, 400, "exactly one of the fields dataframe_split"),
        ({"inputs": [[1.0] * 64], "instances": [[1.0] * 64]}, 400, "exactly one of the fields"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0]]}}, 400, "row 0 has 1 values for 2 columns"),
        ({"dataframe_records": [{"a": 1}, {"b": 2}]}, 400, "dataframe_records[1] has keys ['b'], not ['a']"),
        ({"inputs": [[1.0] * 3]}, 400, "expects shape [batch, 64] (float32), got [1, 3]"),
    ],
)
def test_invocations_errors_take_mlflows_form(http, body, status, message):
    response = http.post("/invocations", json=body)
    assert response.status_code == status
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert message in response.json()["message"]


def test_invocations_refuses_csv_in_mlflows_form(http):
    response = http.post("/invocations", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415
    assert response.json()["error_code"] == "BAD_REQUEST"


def test_columns_map_to_the_manifests_feature_names_in_any_order(named_app, want):
    order = list(reversed(range(64)))
    split = {"columns": [FEATURES[i] for i in order], "data": X[:, order].tolist()}
    response = asgi(named_app, "POST", "/invocations", json={"dataframe_split": split})
    assert response.json() == {"predictions": want["label"].tolist()}
    records = [{FEATURES[i]: float(row[i]) for i in order} for row in X]
    response = asgi(named_app, "POST", "/invocations", json={"dataframe_records": records})
    assert response.json() == {"predictions": want["label"].tolist()}


def test_columns_that_are_not_the_features_are_named(named_app):
    columns = [*FEATURES[:63], "colour"]
    response = asgi(
        named_app, "POST", "/invocations", json={"dataframe_split": {"columns": columns, "data": [[0] * 64]}}
    )
    assert response.status_code == 400
    assert "columns do not match the model's features (missing px63; unknown colour)" in response.json()["message"]
