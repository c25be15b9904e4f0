"""Over a thousand malformed requests at one running server: every one a 4xx with a message, none a 5xx.

Hypothesis draws the requests (bad JSON, wrong names, dtypes, shapes and element counts, truncated binary
tensors, bad ``Inference-Header-Content-Length`` values, bodies over the limit, wrong content types, unknown
paths and methods); one keep-alive connection carries them all. Afterwards a valid request still succeeds
and the server has written no traceback.
"""

from __future__ import annotations

import gzip
import json
import string

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from .conftest import SMALL_LIMIT

MODEL = "/v2/models/digits-mlp"
INFER = MODEL + "/infer"
POSTS = [INFER, MODEL + "/versions/1.0.0/infer", "/predict", "/invocations"]
VALID_GETS = {"/v2", "/v2/health/live", "/v2/health/ready", MODEL, MODEL + "/ready", "/ping", "/health", "/metrics"}
VALID_GETS |= {MODEL + "/versions/1.0.0", MODEL + "/versions/1.0.0/ready"}
MLFLOW_PATHS = {"/invocations", "/ping", "/health"}
DATATYPES = ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP64", "BYTES", "fp32", "FLOAT", ""]
EXAMPLES = 170
RUN = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


class Sender:
    """Sends requests on one connection and checks each answer is a 4xx with a message in its protocol's form."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.sent = 0

    def expect_4xx(self, method: str, path: str, *, content: bytes = b"", headers=None) -> httpx.Response:
        response = self.http.request(method, path, content=content, headers=headers or {})
        self.sent += 1
        assert 400 <= response.status_code < 500, (method, path, content[:200], response.status_code, response.text)
        doc = response.json()
        if path.rstrip("/") in MLFLOW_PATHS:
            assert doc["error_code"] == "BAD_REQUEST"
            message = doc["message"]
        else:
            message = doc["error"]
        assert isinstance(message, str)
        assert message.strip()
        return response


def oip_doc(**changes):
    doc = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
    doc.update(changes)
    return {"inputs": [doc]}


def binary(x: np.ndarray, size_delta: int = 0, extra: bytes = b"", length_header=None):
    raw = x.tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw) + size_delta},
                }
            ]
        }
    ).encode()
    headers = {"Inference-Header-Content-Length": str(len(head)) if length_header is None else length_header}
    return head + raw + extra, headers


@pytest.mark.slow
def test_a_thousand_malformed_requests_get_4xx_and_the_server_keeps_serving(mlp_server):  # noqa: C901, PLR0915
    http = httpx.Client(base_url=mlp_server.url, trust_env=False, timeout=30)
    sender = Sender(http)

    @RUN
    @given(path=st.sampled_from(POSTS), body=st.binary(max_size=300))
    def bad_bytes(path, body):
        sender.expect_4xx("POST", path, content=body, headers={"Content-Type": "application/json"})

    @RUN
    @given(path=st.sampled_from(POSTS), doc=json_values)
    def wrong_json_structure(path, doc):
        sender.expect_4xx("POST", path, content=json.dumps(doc).encode())

    @RUN
    @given(
        change=st.one_of(
            st.builds(lambda n: {"name": n}, st.text(max_size=10).filter(lambda n: n != "input")),
            st.builds(lambda d: {"datatype": d}, st.sampled_from(DATATYPES)),
            st.builds(lambda s: {"shape": s}, st.lists(st.integers(0, 200), max_size=4).filter(lambda s: s != [1, 64])),
            st.builds(lambda n: {"data": [0.5] * n}, st.integers(0, 300).filter(lambda n: n != 64)),
            st.builds(
                lambda v: {"data": [v] * 64}, st.text(max_size=3) | st.none() | st.lists(st.integers(), min_size=2)
            ),
            st.builds(lambda v: {"shape": v}, json_values.filter(lambda v: v != [1, 64])),
            st.builds(lambda v: {"parameters": v}, json_values.filter(lambda v: not isinstance(v, dict))),
        ),
        outputs=st.none() | st.lists(st.fixed_dictionaries({"name": st.text(max_size=6)}), max_size=2),
    )
    def wrong_tensors(change, outputs):
        doc = oip_doc(**change)
        if outputs is not None:
            doc["outputs"] = outputs
        sender.expect_4xx("POST", INFER, content=json.dumps(doc).encode())

    @RUN
    @given(
        rows=st.integers(1, 4),
        size_delta=st.integers(-300, 300),
        extra=st.binary(max_size=20),
        length=st.none()
        | st.integers(-5, 600).map(str)
        | st.text(string.ascii_letters + string.digits + "-+.", min_size=1, max_size=6),
    )
    def broken_binary(rows, size_delta, extra, length):
        x = np.full((rows, 64), 0.25, np.float32)
        body, headers = binary(x, size_delta, extra, length)
        assume(
            size_delta != 0 or extra or (length is not None and length != headers["Inference-Header-Content-Length"])
        )
        if length is not None and length.strip() == str(len(body) - x.nbytes - len(extra)):
            assume(size_delta != 0 or extra)
        sender.expect_4xx("POST", INFER, content=body, headers=headers)

    @RUN
    @given(
        form=st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "features"]),
        width=st.integers(0, 100).filter(lambda w: w != 64),
        rows=st.integers(0, 3),
        junk=st.sampled_from([None, "x", [1, [2]], {"a": 1}]),  # (booleans are numbers to the model)
    )
    def wrong_tables(form, width, rows, junk):
        row = [0.5] * width if rows else []
        data = [row] * rows
        if junk is not None and rows:
            data = [[junk] * 64]
        body = {
            "dataframe_split": {"dataframe_split": {"columns": [f"c{i}" for i in range(len(row))], "data": data}},
            "dataframe_records": {"dataframe_records": [{f"c{i}": v for i, v in enumerate(r)} for r in data]},
            "instances": {"instances": data},
            "inputs": {"inputs": data},
            "features": {"features": data},
        }[form]
        sender.expect_4xx(
            "POST", "/predict" if form == "features" else "/invocations", content=json.dumps(body).encode()
        )

    @RUN
    @given(
        path=st.sampled_from(POSTS),
        over=st.integers(1, 50_000),
        declared=st.booleans(),
    )
    def bodies_over_the_limit(path, over, declared):
        body = b"[" + b"0," * ((SMALL_LIMIT + over) // 2) + b"0]"
        if declared:
            response = sender.expect_4xx("POST", path, content=body)
        else:
            response = sender.expect_4xx("POST", path, content=iter([body[: len(body) // 2], body[len(body) // 2 :]]))
        assert response.status_code == 413

    @RUN
    @given(
        path=st.sampled_from(["/predict", "/invocations"]),
        mime=st.sampled_from(
            [
                "text/plain",
                "text/csv",
                "application/xml",
                "multipart/form-data",
                "image/png",
                "application/json; charset=latin-1",
            ]
        ),
        encoding=st.sampled_from([None, "br", "compress", "gzip"]),
    )
    def wrong_content_types(path, mime, encoding):
        headers = {"Content-Type": mime}
        body = json.dumps({"features": [[0.5] * 64], "inputs": [[0.5] * 64]}).encode()
        if encoding is not None:
            headers = {"Content-Encoding": encoding}  # declared compressed, sent plain (or unknown)
        sender.expect_4xx("POST", path, content=body, headers=headers)

    @RUN
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        path=st.one_of(
            st.text(string.ascii_letters + string.digits + "/-_", max_size=30).map(lambda p: "/" + p),
            st.sampled_from(sorted(VALID_GETS) + POSTS).map(lambda p: p + "/x"),
            st.sampled_from(sorted(VALID_GETS) + POSTS),
        ),
    )
    def unknown_paths_and_methods(method, path):
        normal = path.rstrip("/") or "/"
        assume(not (method == "GET" and normal in VALID_GETS))
        assume(not (method == "POST" and normal in POSTS))
        sender.expect_4xx(method, path, content=b"{}" if method in {"POST", "PUT", "PATCH"} else b"")

    strategies = [
        bad_bytes,
        wrong_json_structure,
        wrong_tensors,
        broken_binary,
        wrong_tables,
        bodies_over_the_limit,
        wrong_content_types,
        unknown_paths_and_methods,
    ]
    with http:
        for strategy in strategies:
            strategy()
        bomb = gzip.compress(b"0" * (SMALL_LIMIT * 4))
        response = sender.expect_4xx("POST", INFER, content=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413
        assert sender.sent >= 1000, sender.sent
        valid = http.post("/predict", json={"features": [[0.5] * 64]})
        assert valid.status_code == 200
        assert len(valid.json()["prediction"]) == 1
    assert mlp_server.proc.poll() is None
    assert "Traceback" not in mlp_server.stderr()
