"""The docs' harness itself: how a block becomes commands, what a swap touches, what a pip line must name."""

from __future__ import annotations

import pytest

from tests.docs.blocks import Block
from tests.docs.packages import check_pip_line
from tests.docs.shell import DocShell


def test_a_block_joins_continuations_and_open_quotes_and_drops_comment_lines():
    text = (
        "# set up\n"
        "edgekit keygen -o fleet   # it's a comment, with a quote\n"
        "edgekit-runtime serve b.edgebundle \\\n"
        "    --port 8080\n"
        "\n"
        'curl -s localhost:8080/x -d \'{"a": [1,\n'
        "                              2]}'\n"
    )
    assert Block("d.md", "h", 0, 1, text).commands() == [
        "edgekit keygen -o fleet   # it's a comment, with a quote",
        "edgekit-runtime serve b.edgebundle      --port 8080",
        "curl -s localhost:8080/x -d '{\"a\": [1,\n                              2]}'",
    ]


def test_a_block_that_never_ends_is_an_error():
    with pytest.raises(AssertionError, match="never ends"):
        Block("d.md", "h", 0, 1, "echo 'open\n").commands()


def test_swaps_replace_whole_words_and_each_must_be_used(tmp_path):
    shell = DocShell(tmp_path / "work", swaps={"model.onnx": "real.onnx"})
    assert shell.swap("edgekit inspect model.onnx") == "edgekit inspect real.onnx"
    assert shell.swap("ls out/model.onnx model.onnx.data") == "ls out/model.onnx model.onnx.data"
    assert shell.swap(".venv/bin/python x.py").endswith("/bin/python x.py")
    with pytest.raises(AssertionError, match="no command had"), DocShell(tmp_path / "w2", swaps={"x.npz": "y"}):
        pass


def test_curl_goes_to_the_server_started_for_its_port_only(tmp_path):
    with DocShell(tmp_path / "work") as shell, pytest.raises(AssertionError, match="nothing was started on port 8080"):
        shell.run("curl -s localhost:8080/v2")


def test_pip_lines_must_name_extras_the_projects_declare():
    assert check_pip_line("pip install -e . -e ./runtime") == "checked, not run: edgekit; edgekit-runtime"
    with pytest.raises(AssertionError, match=r"declares no extra \['gpu'\]"):
        check_pip_line("pip install 'edgekit-runtime[gpu]'")
    with pytest.raises(AssertionError, match="not one of this repository's"):
        check_pip_line("pip install edgekit-server")
