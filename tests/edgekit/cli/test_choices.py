"""The command line's fixed sets are the library's, and a name outside one is refused in one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgekit import passes
from edgekit.auto import PREFERENCES
from edgekit.cli import app, choices
from edgekit.tflite.config import IO_LAYOUTS
from edgekit_runtime import targets

runner = CliRunner()


@pytest.mark.parametrize(
    ("kind", "library"),
    [
        (choices.Prefer, PREFERENCES),
        (choices.Cleanup, passes.cleanup.CLEANUP_METHODS),
        (choices.CalibrationMethod, passes.quantize_static.CALIBRATION_METHODS),
        (choices.TfliteLayout, IO_LAYOUTS),
        (choices.Board, tuple(targets.TARGETS)),
    ],
)
def test_each_set_is_the_librarys(kind, library):
    assert tuple(m.value for m in kind) == tuple(library)


def test_help_lists_the_choices():
    result = runner.invoke(app, ["compress", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for listed in ("[latency|size]", "[onnxslim|ort-basic|none]", "[minmax|entropy|percentile]"):
        assert listed in result.stdout


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--calibration-method", "mse"], "error: --calibration-method 'mse' is unknown: choose from minmax, entropy"),
        (["--bogus"], "error: No such option: --bogus"),
    ],
)
def test_a_refused_option_is_one_line_before_any_work(tmp_path, argv, line):
    result = runner.invoke(app, ["compress", str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out"), *argv])
    assert result.exit_code == 2
    (only,) = result.stderr.strip().splitlines()
    assert only.startswith(line)
    assert not (tmp_path / "out").exists()
