"""``edgekit-runtime bench``: the real command on the signed digits MLP, its JSON against the schema, and its parts."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edgekit_runtime import bench, cold_start
from edgekit_runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "bench.schema.json").read_text())
DIGITS = ROOT / "examples" / "digits"


def refused(capsys, argv):
    code = main(argv)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return code, lines[0]


@pytest.fixture(scope="module")
def measured(signed_bundle, keys, tmp_path_factory):
    """One real run: 2 thread counts, 1 cold start, short measurements."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = ["bench", str(signed_bundle), "--trust", str(keys[1]), "--threads", "2", "--batch", "4"]
    argv += ["--seconds", "0.05", "--cold-starts", "1", "-o", str(out)]
    return main(argv), out


def test_the_command_measures_and_writes_json_that_fits_the_schema(measured):
    code, out = measured
    assert code == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["model"]["name"] == "digits-mlp"
    assert doc["model"]["backend"] == "onnxruntime"
    assert doc["model"]["backend_version"]
    assert [t["threads"] for t in doc["latency"]] == [1, 2]
    for timing in [*doc["latency"], doc["throughput"]]:
        assert timing["calls"] >= 20
        assert 0 < timing["p50_ms"] <= timing["p99_ms"]
    assert doc["throughput"]["batch"] == 4
    assert doc["throughput"]["threads"] == 2
    (start,) = doc["cold_start"]["samples"]
    assert 0 < start["ready_s"] <= start["first_answer_s"]
    assert doc["memory"]["rss_bytes"] == start["rss_bytes"] > 10 << 20  # a Python with NumPy and ONNX Runtime
    assert doc["memory"]["hwm_bytes"] >= doc["memory"]["rss_bytes"]
    assert doc["platform"]["machine"] == platform.machine()


def test_the_table_shows_each_measurement(measured):
    _, out = measured
    text = bench.render(json.loads(out.read_text()))
    lines = text.splitlines()
    assert lines[0].startswith("digits-mlp 1.0.0 on ")
    assert sum(line.startswith("latency ") for line in lines) == 2
    assert sum(line.startswith("throughput ") for line in lines) == 1
    assert any(line.startswith("memory ") and "MiB RSS" in line for line in lines)
    assert any(line.startswith("cold start ") and "to the first answer" in line for line in lines)


def test_a_plain_onnx_file_without_cold_starts(tmp_path, capsys):
    out = tmp_path / "plain.json"
    argv = ["bench", str(DIGITS / "mlp.onnx"), "--threads", "1", "--seconds", "0.02", "--cold-starts", "0"]
    assert main([*argv, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["memory"] is None
    assert doc["cold_start"] is None
    assert doc["throughput"]["batch"] == 8
    assert "not measured (--cold-starts 0)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--threads", "0"], "--threads 0 is not a thread count"),
        (["--batch", "0"], "--batch 0 is not a batch size"),
        (["--seconds", "0"], "--seconds 0.0 is out of range"),
        (["--cold-starts", "-1"], "--cold-starts -1 is negative"),
        (["--allow-unsigned"], "--allow-unsigned only matters with --trust"),
        (["-o", "/nonexistent/folder/b.json"], "cannot write it (no folder /nonexistent/folder)"),
    ],
)
def test_settings_that_cannot_work_are_one_line(capsys, flags, message):
    code, line = refused(capsys, ["bench", str(DIGITS / "mlp.onnx"), *flags])
    assert code == 2
    assert message in line


def test_an_unsigned_file_is_refused_where_keys_are_trusted(capsys, keys):
    code, line = refused(capsys, ["bench", str(DIGITS / "mlp.onnx"), "--trust", str(keys[1])])
    assert code == 3
    assert "requires signed bundles" in line


def test_memory_and_the_request_body():
    status = "Name:\tpython\nVmHWM:\t   90000 kB\nVmRSS:\t   85996 kB\nThreads:\t2\n"
    assert cold_start.memory(status) == (85996 * 1024, 90000 * 1024)
    body = json.loads(cold_start.infer_body({"x": np.zeros((1, 2), np.float32), "n": np.array([3], np.int64)}))
    assert body["inputs"] == [
        {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]},
        {"name": "n", "shape": [1], "datatype": "INT64", "data": [3]},
    ]


def test_the_committed_example_is_a_real_bench_of_this_kind_of_machine():
    (example,) = (ROOT / "examples" / "raspberrypi").glob("bench-*.json")
    doc = json.loads(example.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert example.name == f"bench-{doc['platform']['arch']}-{doc['platform']['cores']}core.json"
    assert doc["cold_start"]["runs"] >= 3
    assert bench.render(doc).splitlines()[0].startswith(f"{doc['model']['name']} {doc['model']['version']} on ")


def test_a_target_sets_the_thread_sweep_cut_to_this_machine_and_is_recorded(tmp_path, capsys):
    out = tmp_path / "target.json"
    argv = ["bench", str(DIGITS / "mlp.onnx"), "--target", "rpi4", "--seconds", "0.02", "--cold-starts", "0"]
    assert main([*argv, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    cores = doc["platform"]["cores"]
    assert doc["settings"]["target"] == "rpi4"
    assert doc["settings"]["threads"] == list(range(1, min(4, cores) + 1))
    assert doc["throughput"]["threads"] == min(4, cores)
    err = capsys.readouterr().err
    if platform.machine() != "aarch64":
        assert f"warning: --target rpi4: this is {platform.machine()}, rpi4 is aarch64" in err
