"""``/metrics`` parses as Prometheus text format 0.0.4, and its counts move with the traffic."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest

from edgekit_runtime.server.metrics import Counter, Histogram, ServerMetrics, render_merged

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """A minimal parser of the text format: checks HELP/TYPE lines and returns every sample by name and labels."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or "")
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no # TYPE line"
        samples[name, frozenset(pairs)] = float(value)
    for (name, labels), count in samples.items():
        if name.endswith("_count") and types.get(name[: -len("_count")]) == "histogram":
            buckets = sorted(
                (float(dict(k)["le"]), v)
                for (n, k), v in samples.items()
                if n == name[:-6] + "_bucket" and k - {("le", dict(k)["le"])} == labels
            )
            assert [v for _, v in buckets] == sorted(v for _, v in buckets), "buckets must be cumulative"
            assert buckets[-1] == (float("inf"), count)
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def http(mlp_server):
    with httpx.Client(base_url=mlp_server.url, trust_env=False) as client:
        yield client


def scrape(http) -> dict[tuple[str, frozenset], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def test_metrics_parse_and_move_with_requests(http):
    before = scrape(http)
    x = np.zeros((3, 64), np.float32)
    assert http.post("/predict", json={"features": x.tolist()}).status_code == 200
    assert http.post("/predict", json={"features": [[1.0]]}).status_code == 400
    doc = {"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": [0.5] * 128}]}
    assert http.post("/v2/models/digits-mlp/infer", json=doc).status_code == 200
    assert http.get("/no/such/thing").status_code == 404
    after = scrape(http)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("edgekit_requests_total", protocol="predict", code="200") == 1
    assert moved("edgekit_requests_total", protocol="predict", code="400") == 1
    assert moved("edgekit_requests_total", protocol="oip", code="200") == 1
    assert moved("edgekit_requests_total", protocol="other", code="404") == 1
    assert moved("edgekit_requests_total", protocol="metrics", code="200") == 1  # the first scrape
    assert moved("edgekit_request_duration_seconds_count", protocol="predict") == 2
    assert moved("edgekit_request_duration_seconds_sum", protocol="predict") > 0
    assert moved("edgekit_inference_duration_seconds_count") == 2  # the 400 never reached the model
    assert moved("edgekit_batch_size_sum") == 5
    assert moved("edgekit_batch_size_bucket", le="4") == 2
    assert value(after, "edgekit_inflight_requests") == 1  # this scrape
    info = [dict(labels) for (name, labels), v in after.items() if name == "edgekit_model_info" and v == 1]
    assert len(info) == 1
    assert info[0]["name"] == "digits-mlp"
    assert info[0]["version"] == "1.0.0"
    assert info[0]["backend"] == "onnxruntime"
    assert len(info[0]["sha256"]) == 64
    assert value(after, "process_start_time_seconds") > 1.5e9
    assert value(after, "edgekit_model_load_seconds") > 0


def test_histogram_buckets_hold_values_up_to_and_including_their_bound():
    histogram = Histogram("h_seconds", "A test.", (0.1, 1.0))
    for seconds in (0.1, 0.5, 1.0, 3.0):
        histogram.observe(seconds)
    text = "# HELP h_seconds A test.\n# TYPE h_seconds histogram\n"
    assert "\n".join(histogram.render()) + "\n" == text + (
        'h_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="1"} 3\nh_seconds_bucket{le="+Inf"} 4\n'
        "h_seconds_sum 4.6\nh_seconds_count 4\n"
    )


def test_label_values_are_escaped():
    counter = Counter("c_total", "A test.", ("path",))
    counter.inc(('a"b\\c\nd',))
    assert counter.render()[-1] == 'c_total{path="a\\"b\\\\c\\nd"} 1'
    assert parse("\n".join(counter.render()) + "\n")


def test_several_workers_metrics_add_up_as_one_servers():
    workers = [
        ServerMetrics(name="mlp", version="1", sha256="ab", backend="onnxruntime", load_seconds=s) for s in (1, 2)
    ]
    for i, metrics in enumerate(workers):
        for _ in range(3 + i):
            metrics.requests.inc(("predict", "200"))
            metrics.request_seconds.observe(0.002, ("predict",))
        metrics.inflight.set(i)
        metrics.start_time.set(100.0 + i)
    workers[1].requests.inc(("oip", "400"))
    samples = parse(render_merged([w.snapshot() for w in workers]).decode())
    assert value(samples, "edgekit_requests_total", protocol="predict", code="200") == 7
    assert value(samples, "edgekit_requests_total", protocol="oip", code="400") == 1
    assert value(samples, "edgekit_request_duration_seconds_count", protocol="predict") == 7
    assert value(samples, "edgekit_request_duration_seconds_bucket", protocol="predict", le="0.0025") == 7
    assert value(samples, "edgekit_inflight_requests") == 1
    assert value(samples, "edgekit_model_load_seconds") == 2
    assert value(samples, "process_start_time_seconds") == 100
    info = {"name": "mlp", "version": "1", "sha256": "ab", "backend": "onnxruntime"}
    assert samples["edgekit_model_info", frozenset(info.items())] == 1
    assert value(samples, "edgekit_worker_requests_total", worker="0") == 3
    assert value(samples, "edgekit_worker_requests_total", worker="1") == 5
