"""``serve --workers 2``: real processes on one port; /metrics, telemetry and a stop cover all the workers."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import httpx
import numpy as np
import pytest

from edgekit_runtime.telemetry.outbox import Outbox
from edgekit_runtime.telemetry.service import OUTBOX
from tests.runtime.server.conftest import DIGITS
from tests.runtime.server.process import ServeProcess

ROWS = np.load(DIGITS / "mlp_test.npz")["input"]


def _serve(bundle, keys, tmp_path, *extra: str) -> ServeProcess:
    args = [str(bundle), "--port", "0", "--trust", str(keys[1]), "--workers", "2", *extra]
    server = ServeProcess(args, tmp_path / "stderr.log")
    server.wait_ready()
    return server


def _fresh_connections(url: str, count: int) -> list[int]:
    """``count`` /predict requests, each on a new connection (the kernel spreads connections, not requests)."""
    codes = []
    for i in range(count):
        with httpx.Client(base_url=url, timeout=30) as client:
            codes.append(client.post("/predict", json={"features": ROWS[i % len(ROWS)].tolist()}).status_code)
    return codes


def _metric(text: str, pattern: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^{pattern} (\S+)$", text, re.MULTILINE)]


def _workers_of(pid: int) -> list[int]:
    children = f"/proc/{pid}/task/{pid}/children"
    with open(children) as f:  # noqa: PTH123
        return [int(p) for p in f.read().split()]


def test_metrics_and_telemetry_count_every_request_of_both_workers(signed_bundle, keys, tmp_path):
    server = _serve(signed_bundle, keys, tmp_path)
    assert server.ready_line.endswith(", 2 workers)")
    sent = 60
    try:
        assert _fresh_connections(server.url, sent) == [200] * sent
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        again = httpx.get(f"{server.url}/metrics", timeout=30).text  # from whichever worker: the same sums
    finally:
        assert server.stop() == 0
    for text in (metrics, again):
        assert _metric(text, r'edgekit_requests_total\{protocol="predict",code="200"\}') == [sent]
        assert _metric(text, "edgekit_workers") == [2]
    spread = _metric(metrics, r'edgekit_worker_requests_total\{worker="\d"\}')
    assert len(spread) == 2
    assert min(spread) > 0, f"one worker took every connection: {spread}"  # 2 x 2^-59 by chance
    with Outbox(tmp_path / "state-stderr" / OUTBOX) as outbox:
        windows = [json.loads(e.payload) for e in outbox.pending(1000)]
    assert sum(w["requests"] for w in windows) == sent
    assert sum(w["batch_sizes"].get("1", 0) for w in windows) == sent
    assert sum(sum(w["outputs"]["classes"].values()) for w in windows if w.get("outputs")) == sent


def test_a_worker_that_dies_is_started_again_and_the_others_serve_on(signed_bundle, keys, tmp_path):
    server = _serve(signed_bundle, keys, tmp_path)
    try:
        (worker,) = _workers_of(server.proc.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # connections now go to the serving process alone, then to both
            assert _fresh_connections(server.url, 4) == [200] * 4
            replaced = _workers_of(server.proc.pid)
            metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
            if replaced and replaced != [worker] and _metric(metrics, "edgekit_workers") == [2]:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the killed worker was not replaced: {server.stderr()}")
    finally:
        assert server.stop() == 0
    assert f"worker 1 (pid {worker}) ended (exit code -9): starting it again" in server.stderr()


def test_a_stop_ends_every_worker(signed_bundle, keys, tmp_path):
    server = _serve(signed_bundle, keys, tmp_path)
    (worker,) = _workers_of(server.proc.pid)
    assert server.stop(signal.SIGINT) == 0
    assert not os.path.exists(f"/proc/{worker}")  # noqa: PTH110  (reaped by the serving process)
