"""Every shell block of README.md and docs/*.md is run by a test, or listed here with why it cannot be.

A new block fails ``test_every_shell_block_is_run_by_a_test`` until a test runs it (tests/docs/shell.py runs a
doc's commands as written) and ``RUN_BY`` names that test. Blocks are named by document and heading
(tests/docs/blocks.py), so the table holds no copy of a doc's text: the tests read the blocks from the files.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.docs.blocks import ROOT, all_blocks

QUICKSTART = "README.md § Quickstart: from the demo to a signed bundle answering over HTTP"
TARGETS = "docs/targets.md § Target profiles: `--target rpi4 | rpi5 | rpi-zero2 | jetson-orin | x86`"

#: block -> the test that runs it
RUN_BY = {
    "README.md § edgekit": (
        "tests/docs/test_readme.py::test_the_opening_lines_are_the_quickstarts_demo_and_what_ci_runs"
    ),
    QUICKSTART: "tests/docs/test_quickstart.py::test_the_demo_writes_the_bundle_the_quickstart_signs",
    f"{QUICKSTART} #2": (
        "tests/docs/test_quickstart.py::test_the_curl_request_is_a_real_digit_and_the_answer_is_the_one_shown"
    ),
    "README.md § Compress a model": "tests/docs/test_readme.py::test_compress_a_model",
    "README.md § Start from what you have, end with a signed bundle": (
        "tests/docs/test_readme.py::test_start_from_what_you_have_end_with_a_signed_bundle"
    ),
    "README.md § Serve it on the device": "tests/docs/test_readme.py::test_serve_it_on_the_device",
    "README.md § Watch it from the host": "tests/docs/test_readme.py::test_watch_it_from_the_host",
    "README.md § Roll a model out to the fleet": (
        "tests/integration/test_readme_fleet.py::test_the_readme_fleet_quickstart_rolls_out_a_signed_bundle"
    ),
    "docs/bundle.md § Importers and the signed edge bundle": (
        "tests/docs/test_host_docs.py::test_bundle_md_keygen_compress_pack_sign_verify_inspect_convert"
    ),
    "docs/compress.md § Auto mode: compress under an accuracy budget": (
        "tests/docs/test_host_docs.py::test_compress_md_auto_mode_with_and_without_labels"
    ),
    "docs/fleet.md § From the host": (
        "tests/docs/test_fleet_docs.py::test_from_the_host_deploy_rollback_set_config_watch_devices"
    ),
    "docs/fleet.md § Broker: one identity per device": (
        "tests/docs/test_fleet_docs.py::test_provision_then_each_client_logs_in_with_its_own_account"
    ),
    "docs/fleet.md § Broker: one identity per device #2": (
        "tests/docs/test_fleet_docs.py::test_provision_then_each_client_logs_in_with_its_own_account"
    ),
    "docs/runtime.md § The device runtime (`edgekit-runtime`)": (
        "tests/docs/test_device_docs.py::test_runtime_md_install_lines_name_real_extras"
    ),
    "docs/runtime.md § Footprint": "tests/docs/test_device_docs.py::test_runtime_md_footprint",
    "docs/runtime.md § Serving: `edgekit-runtime serve`": "tests/docs/test_device_docs.py::test_runtime_md_serving",
    TARGETS: "tests/docs/test_device_docs.py::test_targets_md_host_and_device_lines_for_a_pi4",
    "docs/telemetry.md § On the device": (
        "tests/docs/test_telemetry_docs.py::test_device_and_collector_over_tls_into_postgresql"
    ),
    "docs/telemetry.md § Messages": (
        "tests/docs/test_telemetry_docs.py::test_the_schema_tool_rewrites_nothing_on_this_tree"
    ),
    "docs/telemetry.md § Collector": (
        "tests/docs/test_telemetry_docs.py::test_device_and_collector_over_tls_into_postgresql"
    ),
    "docs/tflite.md § From the command line: `edgekit compress --to tflite`": (
        "tests/edgekit/tflite/test_docs.py::test_the_command_line_examples_run"
    ),
}

BENCHMARK = (
    "benchmark runs of minutes each; tests/tools/test_bench_*.py and test_fleet_sim.py run the tools briefly, "
    "and test_the_benchmark_lines_give_options_their_tools_have checks every option these lines give"
)
#: block -> why no test runs it (kept to the fewest)
NOT_RUN = {
    "docs/benchmarks.md § Compression and the accuracy budget (issues 2, 3 and 21)": BENCHMARK,
    "docs/benchmarks.md § The same choice from run to run (issue 21)": BENCHMARK,
    "docs/benchmarks.md § Serving (issue 5)": BENCHMARK,
    "docs/benchmarks.md § With opportunistic micro-batching (`--max-batch 32`)": BENCHMARK,
    "docs/benchmarks.md § Short calls on the event loop (issue 22, first step)": BENCHMARK,
    "docs/benchmarks.md § All the cores, and the HTTP engine (issue 22)": BENCHMARK,
    "docs/benchmarks.md § Telemetry (issue 6)": BENCHMARK,
    "docs/benchmarks.md § Fleet simulator (issue 7)": BENCHMARK,
    "docs/benchmarks.md § A rollout over MQTT to the same 200 devices": BENCHMARK,
    "docs/benchmarks.md § TFLite (issue 8)": BENCHMARK,
    "docs/benchmarks.md § Before and after the one-house refactor (issue 18)": (
        f"against a git worktree of an old commit; {BENCHMARK}"
    ),
    "docs/runtime.md § Limits": (
        "a test of the suite, run by pytest itself; test_the_pytest_lines_select_tests_that_exist checks it"
    ),
    "docs/targets.md § Tried on the boards' instruction sets: the board lab": (
        "builds Debian Arm roots (debootstrap, qemu-user, root, minutes cold); "
        "tests/examples/test_raspberrypi_emulated.py runs the same lab, and its pytest line is checked as above"
    ),
}


def test_every_shell_block_is_run_by_a_test():
    keys = [block.key for block in all_blocks()]
    assert len(keys) == len(set(keys)), "two blocks with one name"
    unlisted = [key for key in keys if key not in RUN_BY and key not in NOT_RUN]
    assert unlisted == [], (
        "shell blocks no test runs: run each as written in a test (tests/docs/shell.py) and name the test in "
        "RUN_BY in tests/docs/test_coverage.py:\n" + "\n".join(unlisted)
    )
    gone = sorted((set(RUN_BY) | set(NOT_RUN)) - set(keys))
    assert gone == [], "listed in tests/docs/test_coverage.py but not in the docs (moved or renamed?):\n" + "\n".join(
        gone
    )
    assert set(RUN_BY).isdisjoint(NOT_RUN)


@pytest.mark.parametrize("key", sorted(RUN_BY))
def test_the_named_test_exists_and_reads_its_block_from_the_doc(key):
    path, name = RUN_BY[key].split("::")
    source = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{RUN_BY[key]} does not exist"
    doc, heading = key.split(" § ", 1)
    stem = heading.split(" #")[0].split("`")[0].rstrip(" :")
    shared = (ROOT / path).with_name("conftest.py")
    text = source + (shared.read_text(encoding="utf-8") if shared.is_file() else "")
    assert doc.rsplit("/", 1)[-1] in text, f"{path} does not read {doc}"
    assert stem in text, f"{path} does not find the block under '{heading}'"


def _commands(keys: dict[str, str]) -> list[str]:
    return [command for block in all_blocks() if block.key in keys for command in block.commands()]


def test_the_benchmark_lines_give_options_their_tools_have():
    helps: dict[str, str] = {}
    checked = 0
    for command in _commands({key: why for key, why in NOT_RUN.items() if BENCHMARK in why}):
        words = shlex.split(command, comments=True)
        tools = [word for word in words if re.fullmatch(r"tools/\w+\.py", word)]
        if not tools:
            continue
        tool = tools[0]
        if tool not in helps:
            shown = subprocess.run(
                [sys.executable, tool, "--help"], cwd=ROOT, capture_output=True, text=True, check=False
            )
            assert shown.returncode == 0, f"{tool} --help: {shown.stderr}"
            helps[tool] = shown.stdout
        options = [word.split("=")[0] for word in words[words.index(tool) + 1 :] if word.startswith("--")]
        missing = [option for option in options if option not in helps[tool]]
        assert missing == [], f"{tool} has no {missing}: {command}"
        checked += 1
    assert checked >= 8


def test_the_pytest_lines_select_tests_that_exist():
    lines = [command for command in _commands(NOT_RUN) if ".venv/bin/pytest" in command]
    assert len(lines) == 2
    for command in lines:
        words = shlex.split(command, comments=True)
        path = ROOT / words[1]
        names = re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), re.MULTILINE)
        keyword = words[words.index("-k") + 1] if "-k" in words else ""
        assert [name for name in names if keyword in name], f"{command} selects no test"
