"""Five thousand malformed HTTP requests over a bare socket to a real server process: not one answered 5xx.

test_malformed.py checks that well-framed requests with wrong contents get a 4xx in their protocol's form;
this module goes under the HTTP client: bytes no client library would send. Hypothesis draws odd methods and
targets, header names and values with non-ASCII and control bytes and up to 80 KiB long, garbage in
``Inference-Header-Content-Length`` (superscript and Arabic-Indic digits, thousands of digits, signs),
tensors with more than 64 dimensions, huge, negative and non-integer dimensions, unknown datatypes, deep
nesting, broken JSON, binary and gzip bodies, chunked framing. Each request is sent as raw bytes; the
client reconnects whenever the server closes the connection.

Every 5xx is collected rather than failing at the first, so one run names every distinct fault (with its
smallest request). The server has short header and body timeouts so that a request whose body never
arrives (an ``Upgrade`` request's body is not read) is answered quickly; the memory budget and the
connection cap are at their defaults and must not be reached: one connection at a time, bodies under 1 MiB.
"""

from __future__ import annotations

import gzip
import json
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SMALL_LIMIT
from .process import ServeProcess
from .raw_http import RawClient, request

NAME = "digits-mlp"
MODEL = f"/v2/models/{NAME}".encode()
INFER = MODEL + b"/infer"
ROUTES = [b"/v2", b"/v2/health/live", b"/v2/health/ready", MODEL, MODEL + b"/ready", INFER]
ROUTES += [MODEL + b"/versions/1.0.0/infer", b"/predict", b"/invocations", b"/ping", b"/health", b"/metrics"]
POSTS = [INFER, MODEL + b"/versions/1.0.0/infer", b"/predict", b"/invocations"]
#: requests per strategy: 5,000 in all
SHARES = {"tensors": 1400, "binary": 900, "tables": 700, "http": 1500, "headers": 500}
#: what no input may take longer than to answer (the server's header and body timeouts are 1 s)
ANSWER_WITHIN = 10.0


def run(examples: int) -> settings:
    """A fixed, derandomized profile: the same requests on every run."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
dimensions = st.one_of(
    st.integers(0, 8),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)
shapes = st.one_of(
    st.lists(dimensions, max_size=6),
    st.lists(st.just(1), min_size=60, max_size=100),  # the most dimensions NumPy has is 64
    st.lists(st.integers(0, 3), min_size=63, max_size=80),
    st.sampled_from([[1, 64], [64], [1, 1, 64], [0, 64], [2, 32]]),
    json_values,
)
datatypes = st.one_of(
    st.sampled_from(["FP32", "FP16", "FP64", "INT8", "INT64", "UINT64", "BOOL", "BYTES", "fp32", "", "BF16"]),
    json_values,
)


def nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


data_values = st.one_of(
    st.lists(scalars, max_size=70),
    st.builds(lambda n, v: [v] * n, st.integers(0, 130), scalars),
    st.integers(55, 120).map(lambda d: json.loads(nested(d))),
    json_values,
)
#: what a header-length header may hold: digits no ``int()`` of ASCII text expects, signs, spaces, thousands of digits
number_texts = st.one_of(
    st.integers(-5, 600).map(str),
    st.sampled_from(
        ["²", "¹²", "³", "١٢", "\uff11\uff12", "٣", "0x10", "1e3", "+12", " 12 ", "12 34", "", "-0", "9" * 5000]
    ),
    st.text(string.digits, min_size=1, max_size=30),
    st.text(max_size=8),
)


def header_value(text: str) -> bytes:
    """A header value as a client might put it on the wire: UTF-8, or Latin-1 where it fits."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


header_names = st.one_of(
    st.sampled_from(
        [
            b"Content-Type",
            b"Content-Encoding",
            b"Inference-Header-Content-Length",
            b"Accept",
            b"Expect",
            b"Connection",
            b"Upgrade",
            b"Accept-Encoding",
            b"X-Request-Id",
            b"Authorization",
            b"Cookie",
        ]
    ),
    st.binary(min_size=1, max_size=20).filter(lambda n: b":" not in n and b"\r" not in n and b"\n" not in n),
    st.text(string.ascii_letters + "-", min_size=1, max_size=30).map(str.encode),
)
header_values = st.one_of(
    st.binary(max_size=40).filter(lambda v: b"\r" not in v and b"\n" not in v),
    st.text(max_size=40).map(lambda t: t.replace("\r", "").replace("\n", "")).map(header_value),
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=latin-1",
            b"application/octet-stream",
            b"gzip",
            b"deflate",
            b"br",
            b"identity",
            b"100-continue",
            b"close",
            b"keep-alive",
            b"upgrade",
            b"websocket",
            b"h2c",
        ]
    ),
    st.integers(1_000, 80_000).map(lambda n: b"v" * n),  # past the server's 64 KiB request-head limit or near it
    number_texts.map(header_value),
)


class Fuzzer:
    """Sends requests and keeps every 5xx (and every request left unanswered), smallest first."""

    def __init__(self, url: str) -> None:
        self.client = RawClient(url, timeout=ANSWER_WITHIN)
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.faults: dict[str, bytes] = {}

    def send(self, raw: bytes) -> None:
        self.sent += 1
        started = time.monotonic()
        try:
            answer = self.client.send(raw)
        except EOFError:  # hung up without a word: uvicorn does that for bytes that are not HTTP at all
            self.statuses[0] = self.statuses.get(0, 0) + 1
            return
        except TimeoutError:
            self._fault(f"no answer within {ANSWER_WITHIN} s", raw)
            return
        self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
        if answer.status >= 500:
            self._fault(f"{answer.status} {answer.body[:160]!r}", raw)
        elif time.monotonic() - started > ANSWER_WITHIN:
            self._fault(f"{answer.status} after {time.monotonic() - started:.1f} s", raw)

    def _fault(self, what: str, raw: bytes) -> None:
        kept = self.faults.get(what)
        if kept is None or len(raw) < len(kept):
            self.faults[what] = raw

    def report(self) -> str:
        return "\n".join(f"{what}\n    {raw[:600]!r}" for what, raw in sorted(self.faults.items()))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, signed_bundle, keys):
    """The digits bundle behind short header and body timeouts; every other limit at its default."""
    folder = tmp_path_factory.mktemp("fuzz")
    args = [str(signed_bundle), "--port", "0", "--trust", str(keys[1]), "--no-telemetry"]
    args += ["--max-body-bytes", str(SMALL_LIMIT), "--header-timeout", "1", "--body-timeout", "1"]
    server = ServeProcess(args, folder / "stderr.log")
    server.wait_ready()
    yield server
    server.stop()


def oip_body(doc: dict) -> bytes:
    return json.dumps(doc, allow_nan=False).encode()


@pytest.mark.slow
def test_five_thousand_malformed_requests_and_not_one_5xx(fuzz_server):  # noqa: C901
    fuzzer = Fuzzer(fuzz_server.url)

    @run(SHARES["tensors"])
    @given(
        name=st.one_of(st.just("input"), st.text(max_size=4), json_values),
        shape=shapes,
        datatype=datatypes,
        data=data_values,
        parameters=st.one_of(
            st.none(),
            st.fixed_dictionaries({"binary_data_size": st.one_of(st.integers(-(2**65), 2**65), json_values)}),
            st.just({"shared_memory_region": "x"}),
            json_values,
        ),
        extra=st.one_of(
            st.none(),
            st.fixed_dictionaries({"outputs": json_values}),
            st.fixed_dictionaries({"parameters": json_values}),
            st.fixed_dictionaries({"id": json_values}),
            st.fixed_dictionaries(
                {"outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=12), "parameters": json_values}))}
            ),
        ),
        copies=st.integers(1, 3),
        path=st.sampled_from(POSTS[:2]),
    )
    def tensors(*, name, shape, datatype, data, parameters, extra, copies, path):
        doc: dict = {"name": name, "shape": shape, "datatype": datatype, "data": data}
        if parameters is not None:
            doc["parameters"] = parameters
        body = {"inputs": [doc] * copies, **(extra or {})}
        fuzzer.send(request(b"POST", path, [(b"Content-Type", b"application/json")], oip_body(body)))

    @run(SHARES["binary"])
    @given(
        shape=st.one_of(st.lists(st.integers(0, 70), min_size=1, max_size=3), shapes),
        datatype=st.sampled_from(["FP32", "BYTES", "BOOL", "INT64", "FP16", "UINT8"]) | datatypes,
        size=st.one_of(st.integers(0, 600), st.integers(-(2**64), 2**64), json_values),
        payload=st.binary(max_size=600),
        length=st.one_of(st.none(), number_texts, st.just("exact")),
        body_prefix=st.binary(max_size=8),
    )
    def binary(*, shape, datatype, size, payload, length, body_prefix):
        head = oip_body(
            {
                "inputs": [
                    {"name": "input", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}
                ]
            }
        )
        headers = [(b"Content-Type", b"application/octet-stream")]
        if length is not None:
            headers.append(
                (b"Inference-Header-Content-Length", header_value(str(len(head)) if length == "exact" else length))
            )
        fuzzer.send(request(b"POST", INFER, headers, body_prefix + head + payload))

    @run(SHARES["tables"])
    @given(
        path=st.sampled_from([b"/predict", b"/invocations"]),
        key=st.sampled_from(["features", "dataframe_split", "dataframe_records", "instances", "inputs", "x"]),
        value=st.one_of(
            json_values,
            data_values,
            st.integers(55, 120).map(lambda d: json.loads(nested(d, "0.5"))),
            st.builds(lambda w, n: [[0.5] * w] * n, st.integers(0, 70), st.integers(0, 3)),
            st.builds(lambda v: [[v] * 64], scalars),
            st.fixed_dictionaries({"columns": json_values, "data": data_values}),
            st.lists(st.dictionaries(st.text(max_size=3), scalars, max_size=4), max_size=3),
        ),
        content_type=st.one_of(st.none(), header_values),
    )
    def tables(path, key, value, content_type):
        headers = [] if content_type is None else [(b"Content-Type", content_type)]
        fuzzer.send(request(b"POST", path, headers, oip_body({key: value})))

    @run(SHARES["http"])
    @given(
        method=st.one_of(
            st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE"]),
            st.sampled_from([b"PROPFIND", b"PURGE", b"SEARCH", b"MKCOL", b"get", b"G\xc3\x89T", b"CONNECT"]),
            st.binary(min_size=1, max_size=8).filter(lambda m: b" " not in m and b"\r" not in m and b"\n" not in m),
        ),
        target=st.one_of(
            st.sampled_from(ROUTES),
            st.sampled_from(ROUTES).map(lambda r: r + b"/"),
            st.sampled_from(ROUTES).map(lambda r: r + b"?x=%ff&y"),
            st.sampled_from([b"*", b"http://edgekit/predict", b"//predict", b"/v2/models//infer", b"/%00", b"/%ff%fe"]),
            st.sampled_from([b"/v2/models/" + b"a" * 5000 + b"/infer", b"/" + b"x" * 70_000, b"/predict#frag"]),
            st.binary(min_size=1, max_size=30)
            .filter(lambda t: b" " not in t and b"\r" not in t and b"\n" not in t)
            .map(lambda t: b"/" + t),
            st.text(min_size=1, max_size=12).map(lambda t: ("/" + t.replace(" ", "")).encode()),
        ),
        headers=st.lists(st.tuples(header_names, header_values), max_size=5),
        body=st.one_of(
            st.just(b""),
            st.binary(max_size=400),
            st.just(b'{"features": [[0.5]]}'),
            st.just(gzip.compress(b"x" * 10_000)),
            st.just(gzip.compress(b'{"features": [[0.5]]}')[:-4]),
        ),
        framing=st.sampled_from(["length", "chunked", "both", "none"]),
        version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b"HTTP/9"]),
    )
    def http(*, method, target, headers, body, framing, version):
        lines = [method + b" " + target + b" " + version, b"Host: edgekit"]
        safe = [(n, v) for n, v in headers if n.lower() not in {b"content-length", b"transfer-encoding", b"host"}]
        if framing in {"length", "both"} or (framing == "none" and body):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        wire = body
        if framing in {"chunked", "both"}:
            lines.append(b"Transfer-Encoding: chunked")
            wire = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        lines += [n + b": " + v for n, v in safe]
        fuzzer.send(b"\r\n".join(lines) + b"\r\n\r\n" + wire)

    @run(SHARES["headers"])
    @given(
        path=st.sampled_from(POSTS),
        headers=st.lists(st.tuples(header_names, header_values), min_size=1, max_size=4),
    )
    def headers_on_valid_bodies(path, headers):
        body = oip_body(
            {
                "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}],
                "features": [[0.5] * 64],
            }
            if path in POSTS[:2]
            else {"features": [[0.5] * 64], "inputs": [[0.5] * 64]}
        )
        safe = [(n, v) for n, v in headers if n.lower() not in {b"content-length", b"transfer-encoding", b"host"}]
        fuzzer.send(request(b"POST", path, safe, body))

    started = time.monotonic()
    try:
        for strategy in (tensors, binary, tables, http, headers_on_valid_bodies):
            strategy()
    finally:
        fuzzer.client.close()
    seconds = time.monotonic() - started
    assert not fuzzer.faults, f"{len(fuzzer.faults)} kinds of 5xx or silence:\n{fuzzer.report()}"
    assert fuzzer.sent >= sum(SHARES.values()), fuzzer.sent
    assert fuzzer.statuses.get(503, 0) == 0  # the memory budget and the connection cap were never reached
    print(f"{fuzzer.sent} requests in {seconds:.1f} s: {dict(sorted(fuzzer.statuses.items()))}")

    with RawClient(fuzz_server.url) as client:
        body = json.dumps({"features": [[0.5] * 64]}).encode()
        assert client.send(request(b"POST", b"/predict", [], body)).status == 200
    assert fuzz_server.proc.poll() is None
    assert "Traceback" not in fuzz_server.stderr()
