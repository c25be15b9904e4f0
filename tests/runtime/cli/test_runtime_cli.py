"""The device command: it never imports the host toolkit, and its engine flags."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgekit_runtime import __version__
from edgekit_runtime.cli import main, parse, serve
from tests.runtime.server.process import ServeProcess

MLP = Path(__file__).resolve().parents[3] / "examples" / "digits" / "mlp.onnx"


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgekit-runtime {__version__}"


def test_runtime_imports_nothing_from_the_host_toolkit():
    code = (
        "import sys, edgekit_runtime.cli, edgekit_runtime.errors\n"
        "print(sorted(m for m in sys.modules if m == 'edgekit' or m.startswith('edgekit.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_providers_this_build_lacks_are_refused_in_one_line(capsys):
    code = main(["serve", str(MLP), "--providers", "cuda,cpu", "--no-telemetry", "--port", "0"])
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: execution provider CUDAExecutionProvider is not in this onnxruntime build")
    assert line.endswith("install the matching onnxruntime package, or drop --providers")


def test_a_target_on_another_board_is_warned_about_and_still_serves(tmp_path):
    server = ServeProcess([str(MLP), "--port", "0", "--no-telemetry", "--target", "rpi4"], tmp_path / "err.log")
    try:
        url = server.wait_ready()
        assert httpx.get(f"{url}/v2/models/mlp").json()["parameters"] == {"devices": ["CPUExecutionProvider"]}
    finally:
        assert server.stop() == 0
    warnings = [line for line in server.stderr().splitlines() if "--target rpi4" in line]
    assert warnings[0] == f"warning: --target rpi4: this is {platform.machine()}, rpi4 is aarch64"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--header-timeout", "0"], "error: argument --header-timeout: 0.0 keeps nothing: use a number > 0"),
        (["--memory-wait", "soon"], "error: argument --memory-wait: 'soon' is not a number"),
        (["--max-connections", "0"], "error: argument --max-connections: 0 is not a positive count: use 1 or more"),
    ],
)
def test_limit_flags_that_are_not_numbers_of_their_kind_are_refused_by_the_parser(capsys, flags, message):
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(MLP), "--no-telemetry", "--port", "0", *flags])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"{message} (see edgekit-runtime serve --help)"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--idle-timeout", "7200"],
            "error: --idle-timeout 7200 is out of range: use more than 0 and at most 3600 seconds",
        ),
        (
            ["--memory-budget-mb", "64"],
            (
                "error: --memory-budget-mb 64 cannot hold one 16777216-byte JSON body (--max-body-bytes) as it "
                "decodes (304 MiB): use --memory-budget-mb 304 or more, or --max-body-bytes 3532045 or less"
            ),
        ),
        (
            ["--memory-budget-mb", "64", "--max-body-bytes", "4000000"],
            (
                "error: --memory-budget-mb 64 cannot hold one 4000000-byte JSON body (--max-body-bytes) as it "
                "decodes (73 MiB): use --memory-budget-mb 73 or more, or --max-body-bytes 3532045 or less"
            ),
        ),
    ],
)
def test_limits_that_cannot_work_are_one_error_line_naming_the_flag_and_the_fix(capsys, flags, message):
    code = main(["serve", str(MLP), "--no-telemetry", "--port", "0", *flags])
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == message


MAX_300 = ["--max-connections", "300"]


def test_more_connections_than_open_files_is_refused_at_start():
    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    result = subprocess.run(
        [sys.executable, "-m", "edgekit_runtime.cli", "serve", str(MLP), "--no-telemetry", "--port", "0", *MAX_300],
        capture_output=True,
        text=True,
        preexec_fn=few_files,  # no threads in this child yet
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: --max-connections 300 needs 332 open files and this process may open 256: use --max-connections "
        "224 or less, or raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit)\n"
    )


def test_the_limits_are_config_file_keys_checked_as_the_flags_are(tmp_path, capsys):
    config = tmp_path / "edgekit-runtime.toml"
    config.write_text('[server]\nidle-timeout = 2.5\nmax-connections = "many"\n')
    assert main(["serve", str(MLP), "--no-telemetry", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (f"error: --config {config}: 'max-connections': 'many' is not a whole number\n")
    config.write_text("[server]\nheader-timeout = 0.5\nmemory-budget-mb = 8\n")
    assert main(["serve", str(MLP), "--no-telemetry", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("error: --memory-budget-mb 8 cannot hold one 16777216-byte JSON body")


def test_the_limit_flags_reach_the_server_settings(tmp_path):
    config = tmp_path / "edgekit-runtime.toml"
    config.write_text("[server]\nidle-timeout = 2.5\nmemory-budget-mb = 400\n")
    argv = ["serve", str(MLP), "--config", str(config), "--header-timeout", "3", "--max-connections", "64"]
    argv += ["--memory-wait", "4", "--body-timeout", "5"]
    args = parse(argv)
    settings = serve.settings(args)
    assert (settings.idle_timeout, settings.header_timeout, settings.body_timeout) == (2.5, 3.0, 5.0)
    assert (settings.max_connections, settings.memory_budget, settings.memory_wait) == (64, 400 << 20, 4.0)
    defaults = serve.settings(parse(["serve", str(MLP)]))
    assert (defaults.idle_timeout, defaults.header_timeout, defaults.body_timeout) == (5.0, 10.0, 30.0)
    assert (defaults.max_connections, defaults.memory_budget, defaults.memory_wait) == (128, 320 << 20, 30.0)


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["serve", str(MLP), "--port"], "error: Option '--port' requires an argument"),
        (["serve", str(MLP), "--no-such-flag"], "error: No such option"),
        (["serve", str(MLP), "extra"], "error: Got unexpected extra argument (extra)"),
        (["serve", str(MLP), "--idle-timeout", "nan"], "error: argument --idle-timeout: nan keeps nothing"),
        (["bench"], "error: Missing argument 'MODEL'"),
        (["nope"], "error: No such command 'nope'"),
    ],
)
def test_the_parsers_own_refusals_are_one_line_too(capsys, argv, start):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(start)
    assert line.endswith(" --help)")


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "serve" in out
    assert "doctor" in out
    assert "bench" in out
