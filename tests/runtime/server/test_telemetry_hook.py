"""The server tells telemetry about inference requests (and only those), and /metrics shows the outbox."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit_runtime.model import LoadOptions, load
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings
from edgekit_runtime.server.telemetry_hook import error_kind
from edgekit_runtime.signing import load_trusted_keys
from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings
from tests.runtime.server.conftest import DIGITS, asgi


@pytest.fixture
def served(signed_bundle, keys, tmp_path):
    model = load(signed_bundle, LoadOptions(trusted_keys=load_trusted_keys([keys[1]])))
    identity = {"name": model.name, "version": model.version, "sha256": model.sha256, "backend": "onnxruntime"}
    telemetry = Telemetry(
        TelemetrySettings(state_dir=tmp_path / "state", fleet="lab", device="pi-1"), identity, model.reference
    )
    app = create_app(model, ServerSettings(port=0, concurrency=1), telemetry)
    yield app, telemetry
    app.close()
    telemetry.stop()


def stored_windows(telemetry: Telemetry) -> list[dict]:
    return [json.loads(entry.payload) for entry in telemetry.outbox.pending(1000)]


def test_inference_requests_are_recorded_with_inputs_labels_and_error_kinds(served):
    app, telemetry = served
    rows = np.load(DIGITS / "mlp_test.npz")["input"][:60]
    for row in rows:
        assert asgi(app, "POST", "/predict", json={"features": row.tolist()}).status_code == 200
    assert asgi(app, "POST", "/predict", json={"features": [1.0, 2.0]}).status_code == 400
    assert asgi(app, "POST", "/predict", content=b"{not json").status_code == 400
    assert asgi(app, "GET", "/v2/health/ready").status_code == 200  # not inference: not counted
    assert asgi(app, "GET", "/metrics").status_code == 200
    telemetry.recorder.close_window()
    (window,) = stored_windows(telemetry)
    assert window["requests"] == 62
    assert window["errors"] == {"invalid_input": 2}
    assert window["batch_sizes"] == {"1": 60}
    assert sum(window["outputs"]["classes"].values()) == 60
    assert window["inputs"][0]["name"] == "input"
    assert window["inputs"][0]["features"][0]["count"] == 60
    assert window["model"]["sha256"] == app.model.sha256


def test_metrics_show_the_outbox(served):
    app, telemetry = served
    telemetry.recorder.close_window()
    telemetry.recorder.close_window()
    text = asgi(app, "GET", "/metrics").text
    assert "edgekit_telemetry_outbox_windows 2" in text
    assert "# TYPE edgekit_telemetry_outbox_dropped_total counter" in text
    assert "edgekit_telemetry_broker_connected" not in text  # no broker configured


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (400, "invalid_input"),
        (404, "bad_request"),
        (408, "timeout"),
        (413, "too_large"),
        (499, "client_gone"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_error_kinds(status, kind):
    assert error_kind(status) == kind
