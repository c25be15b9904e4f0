"""examples/raspberrypi: the unit passes systemd-analyze, install.sh passes shellcheck and plans right for each
board, the config parses and serves, and the README's numbers are the committed bench's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgekit_runtime import bench
from edgekit_runtime.cli import parse
from tests.examples.offline_checks import analyze, local_config, tool, unit_root
from tests.runtime.server.process import ServeProcess

KIT = Path(__file__).resolve().parents[2] / "examples" / "raspberrypi"
UNIT = KIT / "edgekit-runtime.service"
INSTALL = KIT / "install.sh"
CONFIG = KIT / "edgekit-runtime.toml"


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    done = analyze(unit_root(tmp_path, UNIT.read_text()), "verify", "--man=no")
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""  # verify exits 0 on warnings: none is allowed


def test_verify_does_catch_a_broken_unit(tmp_path):
    broken = UNIT.read_text().replace("MemoryMax=512M", "MemoryMax=lots\nProtectSistem=strict")
    done = analyze(unit_root(tmp_path, broken), "verify", "--man=no")
    assert "Unknown key 'ProtectSistem'" in done.stderr
    assert "Invalid memory limit 'lots'" in done.stderr


def test_the_units_exposure_is_low(tmp_path):
    done = analyze(unit_root(tmp_path, UNIT.read_text()), "security", "--offline=yes", "--threshold=20")
    assert done.returncode == 0, done.stdout[-2000:]  # exposure 2.0 at most (0 is locked down, 10 is exposed)
    assert re.search(r"Overall exposure level for edgekit-runtime.service: 1\.\d OK", done.stdout), done.stdout[-500:]


def test_the_unit_asks_for_what_the_issue_asks():
    text = UNIT.read_text()
    for line in (
        "User=edgekit",
        "ProtectSystem=strict",
        "StateDirectory=edgekit-runtime",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "MemoryMax=512M",
        "CPUQuota=300%",
        "RestartPreventExitStatus=2 3",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), line
    # the paths install.sh creates
    assert "ExecStart=/opt/edgekit/venv/bin/edgekit-runtime serve --config /etc/edgekit/edgekit-runtime.toml" in text
    script = INSTALL.read_text()
    assert "prefix=/opt/edgekit" in script
    assert "/etc/edgekit/edgekit-runtime.toml" in script


def test_install_sh_passes_shellcheck():
    done = subprocess.run([tool("shellcheck"), str(INSTALL)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def plan(*argv: str, arch: str | None = None, python: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env |= {"EDGEKIT_ARCH": arch} if arch else {}
    env |= {"EDGEKIT_PYTHON_VERSION": python} if python else {}
    return subprocess.run(
        [tool("bash"), str(INSTALL), "--check", *argv], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("arch", "python", "argv", "expected"),
    [
        ("arm64", "3.11", [], "pip install 'edgekit-runtime[onnx]' into /opt/edgekit/venv"),
        ("arm64", "3.13", ["--backend", "litert"], "pip install 'edgekit-runtime[litert]'"),
        (
            "armhf",
            "3.11",
            [],
            "--extra-index-url https://www.piwheels.org/simple 'edgekit-runtime' 'tflite-runtime' 'numpy<2'",
        ),
        (
            "amd64",
            "3.12",
            ["--from", "./w.whl", "--prefix", "/srv/ek"],
            "pip install './w.whl[onnx]' into /srv/ek/venv",
        ),
    ],
)
def test_install_sh_plans_the_backend_the_board_has_wheels_for(arch, python, argv, expected):
    done = plan(*argv, arch=arch, python=python)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


@pytest.mark.parametrize(
    ("arch", "python", "argv", "message"),
    [
        (
            "armhf",
            "3.11",
            ["--backend", "onnx"],
            "there is no onnxruntime wheel for 32-bit Arm (armhf): use --backend litert",
        ),
        ("armhf", "3.13", [], "no LiteRT or tflite-runtime wheel for 32-bit Arm with Python 3.13: install the 64-bit"),
        ("armel", "3.11", [], "no inference engine has wheels for armv6"),
        ("arm64", "3.9", [], "Python 3.9 is too old"),
        ("arm64", "3.11", ["--backend", "tpu"], "--backend 'tpu': use auto, onnx or litert"),
        ("arm64", "3.11", ["--colour"], "unknown option '--colour'"),
    ],
)
def test_install_sh_stops_with_one_clear_line_where_nothing_can_work(arch, python, argv, message):
    done = plan(*argv, arch=arch, python=python)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_the_example_config_sets_every_key_it_shows():
    args = parse(["serve", "--config", str(CONFIG)])
    assert args.model == Path("/opt/edgekit/bundles/digits-cnn-1.0.0.edgebundle")
    assert args.trust == [Path("/etc/edgekit/trusted")]
    assert (args.host, args.port, args.concurrency, args.threads) == ("0.0.0.0", 8080, 2, 2)  # noqa: S104
    assert (args.fleet, args.device, args.group, args.deploy_watch) == ("lab", "pi-7", ["shop"], 30.0)
    assert args.state_dir is None  # systemd's $STATE_DIRECTORY
    assert args.mqtt == "mqtts://broker.lan:8883"
    assert args.mqtt_ca == Path("/etc/edgekit/ca.pem")
    assert args.mqtt_password_file == Path("/etc/edgekit/mqtt.password")
    assert args.mqtt_reconnect_max == 30.0


def test_the_example_config_serves(tmp_path, signed_bundle, keys):
    path = local_config(CONFIG, tmp_path, signed_bundle, keys[1])
    server = ServeProcess(["--config", str(path)], tmp_path / "serve.log")
    try:
        url = server.wait_ready()
        assert httpx.get(f"{url}/v2/health/ready", timeout=30).status_code == 200
    finally:
        assert server.stop() == 0, server.stderr()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[mqtt]\nurl = "http://broker.lan"\n', "--mqtt 'http://broker.lan' is not a broker URL: use mqtt://"),
        ('[mqtt]\nurl = "mqtts://broker.lan"\nca = "missing.pem"\n', "--mqtt-ca "),
        ('[telemetry]\nfleet = ""\n', "--fleet '' cannot be an MQTT topic level"),
        ("[server]\nconcurrency = -2\n", "'concurrency': -2 is not a positive count"),
        ("[server]\nthreads = 2.5\n", "'threads': '2.5' is not a whole number"),
        ('[server]\nlog-level = "INFO"\n', "'log-level' is 'INFO': use one of"),
        ("max-delay-ms = 5\n", "--max-delay-ms needs --max-batch"),
        ('[telemetry]\ngroup = ["shop/1"]\n', "--group 'shop/1' cannot be an MQTT topic level"),
    ],
)
def test_bad_values_in_the_config_are_one_line(tmp_path, signed_bundle, keys, text, message):
    path = tmp_path / "edgekit-runtime.toml"
    head = f"model = {json.dumps(str(signed_bundle))}\ntrust = [{json.dumps(str(keys[1]))}]\n"
    path.write_text(head + text)
    cmd = [sys.executable, "-m", "edgekit_runtime.cli", "serve", "--config", str(path), "--port", "0"]
    cmd += ["--state-dir", str(tmp_path / "state")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_the_readme_states_the_committed_bench():
    (example,) = KIT.glob("bench-*.json")
    doc = json.loads(example.read_text())
    readme = (KIT / "README.md").read_text()
    assert bench.render(doc) in readme  # the table, as the command printed it
    assert f"**RSS: {bench.mib(doc['memory']['rss_bytes'])}**" in readme
    assert f"**Cold start: {doc['cold_start']['first_answer_s']:.2f} s**" in readme
