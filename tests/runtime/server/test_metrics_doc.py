"""docs/runtime.md's table of metrics is what a live server's ``/metrics`` says: names, types and label names.

The server answers each protocol and closes one connection for a head over the limit first, so that every
family has a series and shows its labels.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np

from edgekit_runtime import load
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings

from .conftest import DIGITS, thread_server
from .raw_http import Reader, connect, request
from .test_metrics import parse

DOC = Path(__file__).resolve().parents[3] / "docs" / "runtime.md"
#: a table row: | `name`[, `name`] | type, words | `label`, `label` |
ROW = re.compile(r"^\| (`[^|]+`) \| (\w+)[^|]* \|([^|]*)\|$")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """The metrics table under "Metrics (" in docs/runtime.md: name → (type, label names)."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Metrics ("))
    assert lines[start + 2] == "| metric | type | labels |", lines[start + 2]
    found = {}
    for line in lines[start + 4 :]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"not a metrics row: {line}"
        names, kind, labels = match.groups()
        for name in re.findall(r"`([^`]+)`", names):
            found[name] = (kind, frozenset(re.findall(r"`([^`]+)`", labels)))
    assert len(found) >= 10  # the table was read, not cut short
    return found


def scraped(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """A scrape's families: name → (type, label names of its series, without a histogram's ``le``)."""
    kinds = dict(line.split(" ")[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    labels: dict[str, set[str]] = {}
    for name, pairs in parse(text):
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in kinds else name
        labels.setdefault(family, set()).update(key for key, _ in pairs if not (key == "le" and name != family))
    assert set(labels) == set(kinds), f"families without a series: {set(kinds) - set(labels)}"
    return {name: (kind, frozenset(labels[name])) for name, kind in kinds.items()}


def test_the_docs_metrics_table_is_what_metrics_says():
    settings = ServerSettings(port=0, concurrency=1)
    app = create_app(load(DIGITS / "mlp.onnx"), settings)
    with thread_server(app, settings) as (url, _), httpx.Client(base_url=url, trust_env=False) as http:
        assert http.post("/predict", json={"features": np.zeros((2, 64)).tolist()}).status_code == 200
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/ping").status_code == 200
        assert http.get("/no/such/thing").status_code == 404
        with connect(url) as sock:
            sock.sendall(request(b"GET", b"/v2/health/live", [(b"X-Big", b"a" * (70 << 10))]))
            assert Reader(sock).answer().status == 431  # and closed: head_too_large
        response = http.get("/metrics")
    assert response.status_code == 200
    live = scraped(response.text)
    assert live["edgekit_connections_closed_total"] == ("counter", frozenset({"reason"}))
    assert documented() == live
