"""docs/tflite.md: its example runs, its op list matches the writer's table, its error line is the real one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from edgekit.errors import TFLiteConversionError
from edgekit.tflite import convert
from edgekit.tflite.ops import RULES
from tests.edgekit.tflite.harness import const, graph

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "tflite.md").read_text(encoding="utf-8")


def test_the_example_runs(tmp_path, monkeypatch, capsys):
    (code,) = re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace('"examples/', f'"{ROOT}/examples/'), "docs/tflite.md", "exec"), {})  # noqa: S102
    assert (tmp_path / "cnn_int8.tflite").read_bytes()[4:8] == b"TFL3"
    assert capsys.readouterr().out.startswith("NHWC (1, 8, 8, 1)\n")


def test_every_converted_op_is_named():
    section = DOC.split("## What converts", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in RULES if key.rsplit(".", 1)[-1] not in section]
    assert missing == []


def test_the_error_line_is_what_the_writer_says():
    (shown,) = re.findall(r"```text\n(.*?)\n```", DOC, flags=re.DOTALL)
    nodes = [
        helper.make_node("Erf", ["x"], ["e1"], name="erf_1"),
        helper.make_node("Erf", ["e1"], ["e2"], name="erf_2"),
        helper.make_node("Resize", ["e2", "", "s"], ["y"], name="up", mode="cubic"),
    ]
    with pytest.raises(TFLiteConversionError) as caught:
        convert(graph(nodes, {"x": (1, 2, 4, 4)}, [const("s", np.array([1, 1, 2, 2]))]))
    assert str(caught.value) == shown


def test_the_command_line_examples_run(tmp_path, digits):
    from typer.testing import CliRunner

    from edgekit.bundle.signing import generate_keypair
    from edgekit.cli import app

    section = DOC.split("## From the command line", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    key, _ = generate_keypair(tmp_path / "fleet")
    swaps = {
        "model.onnx": str(digits / "cnn.onnx"),
        "calib.npz": str(digits / "cnn_calib.npz"),
        "test.npz": str(digits / "cnn_test.npz"),
        "fleet.key": str(key),
        "out/": str(tmp_path / "out"),
        "dist/": str(tmp_path / "dist"),
    }
    for line in block.splitlines():
        argv = line.split("#", 1)[0].split()[1:]  # drop "edgekit" and the comment
        argv = [swaps.get(a, a) for a in argv]
        if argv[0] == "compress":
            argv += ["--max-eval-samples", "64", "--timing", "0.1"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (line, result.output)
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["out-1.0.0.edgebundle"]


def test_the_nhwc_refusal_is_what_the_runtime_says():
    from edgekit_runtime.errors import InvalidInputError
    from edgekit_runtime.specs import TensorSpec, validate

    shown = " ".join(DOC.split("a request still in NCHW is refused with\n", 1)[1].split("`")[1].split())
    with pytest.raises(InvalidInputError) as caught:
        validate({"input": np.zeros((1, 1, 8, 8), np.float32)}, [TensorSpec("input", "float32", (1, 8, 8, 1), "NHWC")])
    assert str(caught.value) == shown
