"""``edgekit bench-compare``: devices' bench JSON side by side, and one-line refusals of anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.bench_compare import compare, load_result
from edgekit.cli import app
from edgekit.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
(EXAMPLE,) = (ROOT / "examples" / "raspberrypi").glob("bench-*.json")
runner = CliRunner()


def other_device(tmp_path: Path, **changes) -> Path:
    """The committed result as if a Pi 5 had sent it (test data, not a measurement)."""
    doc = json.loads(EXAMPLE.read_text())
    doc["device"] = "pi5-lab"
    doc["platform"] |= {"arch": "aarch64", "board": "Raspberry Pi 5 Model B Rev 1.0", "cores": 4}
    doc["latency"] = [dict(doc["latency"][0], threads=t, p50_ms=1.0 / t) for t in (1, 2, 3, 4)]
    doc["memory"] = None
    doc["cold_start"] = None
    for key, value in changes.items():
        doc["model"][key] = value
    path = tmp_path / "bench-pi5.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_result_reads_into_one_row():
    row = load_result(EXAMPLE)
    doc = json.loads(EXAMPLE.read_text())
    assert row.device == doc["device"]
    assert row.model == f"{doc['model']['name']} {doc['model']['version']}"
    assert row.p50_ms == doc["latency"][0]["p50_ms"]
    assert row.rss_bytes == doc["memory"]["rss_bytes"]
    assert row.cold_start_s == doc["cold_start"]["first_answer_s"]
    assert row.platform.startswith(doc["platform"]["arch"])


def test_devices_side_by_side_with_the_fastest_thread_count(tmp_path):
    rows, warnings = compare([EXAMPLE, other_device(tmp_path)])
    assert warnings == []
    pi = rows[1]
    assert (pi.best_threads, pi.best_p50_ms) == (4, 0.25)
    assert pi.platform == "aarch64, Raspberry Pi 5 Model B Rev 1.0, 4 cores"
    assert pi.rss_bytes is None
    assert pi.cold_start_s is None


def test_different_models_are_compared_with_a_warning(tmp_path):
    _, warnings = compare([EXAMPLE, other_device(tmp_path, name="other", sha256="f" * 64)])
    assert len(warnings) == 1
    assert "different models" in warnings[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"schema": "edgekit.telemetry/1"}', "is not a bench result (edgekit.bench/1, found 'edgekit.telemetry/1')"),
        ("[1, 2]", "is not a bench result"),
        ('{"schema": "edgekit.bench/1", "latency": []}', "is a damaged bench result"),
    ],
)
def test_files_that_are_not_bench_results_are_refused(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(DataError) as refused:
        load_result(path)
    assert message in str(refused.value)


def test_the_command_prints_a_table_and_json(tmp_path):
    pi = other_device(tmp_path)
    result = runner.invoke(app, ["bench-compare", str(EXAMPLE), str(pi)])
    assert result.exit_code == 0, result.output
    assert "pi5-lab" in result.stdout
    assert "0.250 ms (4t)" in result.stdout
    result = runner.invoke(app, ["bench-compare", "--json", str(EXAMPLE), str(pi)])
    assert result.exit_code == 0
    devices = json.loads(result.stdout)["devices"]
    assert [d["device"] for d in devices][1] == "pi5-lab"


def test_the_command_refuses_a_missing_file_in_one_line(tmp_path):
    result = runner.invoke(app, ["bench-compare", str(tmp_path / "nowhere.json")])
    assert result.exit_code == 2
    assert "cannot read it" in result.output
    assert "Traceback" not in result.output
