"""examples/jetson: the unit passes systemd-analyze and leaves the GPU reachable, install.sh passes shellcheck
and plans right for JetPack 6, JetPack 6.0, JetPack 5, a plain aarch64 box and x86-64 (fake roots stand in
for /etc/nv_tegra_release), the config parses and serves here on the CPU, and the README's commands plan."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgekit_runtime import jetson
from edgekit_runtime.cli import parse
from tests.examples.offline_checks import analyze, local_config, tool, unit_root
from tests.runtime.boards import L4T_35_4, L4T_36_3, L4T_36_4
from tests.runtime.server.process import ServeProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KIT = EXAMPLES / "jetson"
UNIT = KIT / "edgekit-runtime.service"
INSTALL = KIT / "install.sh"
CONFIG = KIT / "edgekit-runtime.toml"
INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def service_settings(text: str) -> set[str]:
    """The ``Key=value`` lines of a unit's [Service] section, comments left out."""
    section = text.split("[Service]", 1)[1].split("\n[", 1)[0]
    return {line.strip() for line in section.splitlines() if re.match(r"^[A-Za-z]+=", line.strip())}


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    done = analyze(unit_root(tmp_path, UNIT.read_text()), "verify", "--man=no")
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""  # verify exits 0 on warnings: none is allowed


def test_verify_does_catch_a_broken_unit(tmp_path):
    broken = UNIT.read_text().replace("MemoryMax=4G", "MemoryMax=lots\nSupplementaryGroup=video")
    broken = broken.replace("TimeoutStartSec=20min", "TimeoutStartSec=twenty minutes")
    done = analyze(unit_root(tmp_path, broken), "verify", "--man=no")
    assert "Unknown key 'SupplementaryGroup'" in done.stderr
    assert "Invalid memory limit 'lots'" in done.stderr
    assert "TimeoutStartSec" in done.stderr


def test_the_units_exposure_stays_low_without_the_device_sandbox(tmp_path):
    done = analyze(unit_root(tmp_path, UNIT.read_text()), "security", "--offline=yes", "--threshold=20")
    assert done.returncode == 0, done.stdout[-2000:]  # exposure 2.0 at most (0 is locked down, 10 is exposed)
    assert re.search(r"Overall exposure level for edgekit-runtime.service: 1\.\d OK", done.stdout), done.stdout[-500:]
    assert re.search(r"✗ PrivateDevices=\s+Service potentially has access to hardware devices", done.stdout)
    level = re.search(r"exposure level for edgekit-runtime.service: (\d\.\d)", done.stdout).group(1)
    assert f"exposure **{level} (OK)**" in (KIT / "README.md").read_text()  # the number the README states


def test_the_unit_lets_cuda_reach_the_gpu():
    settings = service_settings(UNIT.read_text())
    keys = {s.split("=", 1)[0] for s in settings}
    # each of these would shut the GPU's device nodes out (PrivateDevices, and any DeviceAllow=, which
    # ProtectClock implies), unmap its groups (PrivateUsers), or forbid code generated at run time
    assert not keys & {"PrivateDevices", "ProtectClock", "DeviceAllow", "DevicePolicy", "PrivateUsers"}
    assert "MemoryDenyWriteExecute" not in keys
    assert "SupplementaryGroups=video render" in settings
    assert "Environment=LD_LIBRARY_PATH=/usr/local/cuda/lib64" in settings
    assert "Environment=CUDA_CACHE_PATH=%S/edgekit-runtime/cuda-cache" in settings
    assert "TimeoutStartSec=20min" in settings  # the first TensorRT engine build takes minutes
    assert {"MemoryHigh=3G", "MemoryMax=4G", "CPUQuota=500%"} <= settings  # an Orin Nano 8 GB, six cores


def test_the_unit_keeps_the_rest_of_the_pis_hardening():
    pi = service_settings((EXAMPLES / "raspberrypi" / "edgekit-runtime.service").read_text())
    sized = ("CPUQuota", "MemoryHigh", "MemoryMax", "TasksMax")  # sized for each board
    left_out = ("PrivateDevices", "ProtectClock", "PrivateUsers")  # the unit's comments say why
    expected = {s for s in pi if not s.startswith(sized + left_out)}
    assert expected <= service_settings(UNIT.read_text()), expected - service_settings(UNIT.read_text())


def test_install_sh_passes_shellcheck():
    done = subprocess.run([tool("shellcheck"), str(INSTALL)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def fake_root(tmp_path: Path, release: str | None) -> Path:
    root = tmp_path / "fake-root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    if release is not None:
        (root / "etc" / "nv_tegra_release").write_text(release)
    return root


def plan(root: Path, *argv: str, arch: str = "arm64", python: str = "3.10") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGEKIT_ROOT=str(root), EDGEKIT_ARCH=arch, EDGEKIT_PYTHON_VERSION=python)
    return subprocess.run(
        [tool("bash"), str(INSTALL), "--check", *argv], capture_output=True, text=True, env=env, timeout=60, check=False
    )


# machines install.sh is asked about: (/etc/nv_tegra_release or None, dpkg's architecture, Python)
JETPACK_6 = (L4T_36_4, "arm64", "3.10")
JETPACK_6_0 = (L4T_36_3, "arm64", "3.10")
JETPACK_5 = (L4T_35_4, "arm64", "3.8")
JETPACK_5_OWN_PYTHON = (L4T_35_4, "arm64", "3.10")
AARCH64 = (None, "arm64", "3.11")  # a Pi, say
X86_64 = (None, "amd64", "3.12")


def run_plan(tmp_path: Path, machine: tuple[str | None, str, str], argv) -> subprocess.CompletedProcess[str]:
    release, arch, python = machine
    return plan(fake_root(tmp_path, release), *argv, arch=arch, python=python)


def test_jetpack_6_gets_nvidias_onnxruntime_gpu_without_pypis_cpu_build(tmp_path):
    done = run_plan(tmp_path, JETPACK_6, [])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "==> Jetson: L4T 36.4.0, JetPack 6 (CUDA 12.6)",
        (
            "==> architecture arm64, Python 3.10: backend gpu (NVIDIA's onnxruntime-gpu: TensorRT, then CUDA, then the "
            "CPU)"
        ),
        f"==> pip install --extra-index-url {INDEX} 'edgekit-runtime' 'onnxruntime-gpu>=1.20' into /opt/edgekit/venv",
        (
            "==> service: user edgekit (groups video, render), /etc/edgekit/edgekit-runtime.toml, "
            "/etc/systemd/system/edgekit-runtime.service"
        ),
    ]


@pytest.mark.parametrize(
    ("machine", "argv", "expected"),
    [
        # JetPack 6, asked for the CPU
        (
            JETPACK_6,
            ["--backend", "cpu"],
            [
                "==> the GPU is not used: --backend cpu (the default here is NVIDIA's onnxruntime-gpu)",
                "==> pip install 'edgekit-runtime[onnx]' into /opt/edgekit/venv",
            ],
        ),
        # JetPack 6.0: CUDA 12.2, and NVIDIA's jp6 wheels are built for 12.6
        (
            JETPACK_6_0,
            [],
            [
                "==> Jetson: L4T 36.3.0, JetPack 6.0 (CUDA 12.2)",
                (
                    f"==> the GPU is not used: NVIDIA's onnxruntime-gpu wheels for JetPack 6 ({INDEX}) need CUDA 12.6: "
                    "upgrade to JetPack 6.1 or newer (L4T R36.4), or use --backend gpu --index URL"
                ),
                "==> pip install 'edgekit-runtime[onnx]' into /opt/edgekit/venv",
            ],
        ),
        # ... unless told where a wheel for it is
        (
            JETPACK_6_0,
            ["--backend", "gpu", "--index", "https://wheels.lan/cu122", "--from", "./w.whl", "--prefix", "/srv/ek"],
            [
                (
                    "==> pip install --extra-index-url https://wheels.lan/cu122 './w.whl' 'onnxruntime-gpu>=1.20' into "
                    "/srv/ek/venv"
                )
            ],
        ),
        # JetPack 5 with a Python 3.10 of its own, on the CPU
        (
            JETPACK_5_OWN_PYTHON,
            ["--backend", "cpu", "--no-service"],
            [
                "==> Jetson: L4T 35.4.1, JetPack 5 (CUDA 11.4)",
                "==> the GPU is not used: L4T 35.4.1 is JetPack 5 (CUDA 11.4)",
                "==> pip install 'edgekit-runtime[onnx]' into /opt/edgekit/venv",
            ],
        ),
        # an aarch64 board that is no Jetson, and an x86-64 box
        (AARCH64, [], ["==> pip install 'edgekit-runtime[onnx]' into /opt/edgekit/venv"]),
        (X86_64, [], ["==> pip install 'edgekit-runtime[onnx]' into /opt/edgekit/venv"]),
    ],
)
def test_install_sh_plans_the_build_this_release_has_wheels_for(tmp_path, machine, argv, expected):
    done = run_plan(tmp_path, machine, argv)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for line in expected:
        assert line in lines, done.stdout
    if machine[0] is None:
        assert f"==> the GPU is not used: not a Jetson (no {tmp_path}/fake-root/etc/nv_tegra_release)" in lines
        assert not any(line.startswith("==> Jetson") for line in lines)
    assert ("==> service: user edgekit (groups video, render)" in done.stdout) == ("--no-service" not in argv)


@pytest.mark.parametrize(
    ("machine", "argv", "message"),
    [
        (
            JETPACK_5,
            [],
            (
                "L4T 35.4.1 is JetPack 5 (Ubuntu 20.04, Python 3.8, CUDA 11.4): NVIDIA publishes no "
                "onnxruntime-gpu for the Python 3.10+ edgekit-runtime needs: upgrade to JetPack 6.1 or newer, or use "
                "--backend cpu"
            ),
        ),
        (JETPACK_5, ["--backend", "cpu"], "Python 3.8 is too old: edgekit-runtime needs 3.10 or newer"),
        (JETPACK_6_0, ["--backend", "gpu"], "--backend gpu: L4T 36.3.0 is JetPack 6.0 (CUDA 12.2): "),
        (X86_64, ["--backend", "gpu"], "--backend gpu: this is not a Jetson (no "),
        ((L4T_36_4, "amd64", "3.10"), [], "NVIDIA's Jetson wheels are for arm64, and this is amd64: use --backend cpu"),
        (("garbled\n", "arm64", "3.10"), [], "does not read like a Jetson Linux release"),
        ((L4T_36_4, "armhf", "3.10"), ["--backend", "cpu"], "untested architecture 'armhf'"),
        (JETPACK_6, ["--backend", "tpu"], "--backend 'tpu': use auto, gpu or cpu"),
        (JETPACK_6, ["--colour"], "unknown option '--colour'"),
    ],
)
def test_install_sh_stops_with_one_clear_line_where_nothing_can_work(tmp_path, machine, argv, message):
    done = run_plan(tmp_path, machine, argv)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_install_sh_agrees_with_the_doctor_and_the_unit():
    script = INSTALL.read_text()
    assert f"jp6_index={jetson.JP6_INDEX}\n" in script  # the index the doctor tells people to use
    assert f'ort_gpu="onnxruntime-gpu>={jetson.ORT_GPU_MIN}"\n' in script
    assert "prefix=/opt/edgekit\n" in script
    assert "usermod --append --groups video,render edgekit" in script  # the unit's SupplementaryGroups
    unit = UNIT.read_text()
    assert "ExecStart=/opt/edgekit/venv/bin/edgekit-runtime serve --config /etc/edgekit/edgekit-runtime.toml" in unit
    assert "cuda_libs=/usr/local/cuda/lib64\n" in script  # what the doctor runs with, as the service does


def serve_args(path):
    return parse(["serve", "--config", str(path)])


def test_the_example_config_sets_every_key_it_shows():
    args = serve_args(CONFIG)
    assert args.target.name == "jetson-orin"
    assert args.target.providers == PROVIDERS
    assert args.providers is None  # the target's where present, the CPU as the fallback
    assert args.model == Path("/opt/edgekit/bundles/digits-cnn-1.0.0.edgebundle")
    assert args.trust == [Path("/etc/edgekit/trusted")]
    assert (args.host, args.port, args.concurrency, args.threads) == ("0.0.0.0", 8080, 2, None)  # noqa: S104
    assert (args.max_batch, args.max_delay_ms) == (None, None)
    assert (args.fleet, args.device, args.group, args.deploy_watch) == ("lab", "orin-3", ["gpu"], 30.0)
    assert args.state_dir is None  # systemd's $STATE_DIRECTORY, where trt-cache/ goes
    assert args.mqtt == "mqtts://broker.lan:8883"
    assert args.mqtt_ca == Path("/etc/edgekit/ca.pem")
    assert args.mqtt_password_file == Path("/etc/edgekit/mqtt.password")


def test_the_configs_commented_providers_line_parses_too(tmp_path):
    text = CONFIG.read_text().replace('# providers = "tensorrt,cuda,cpu"', 'providers = "tensorrt,cuda,cpu"')
    path = tmp_path / "edgekit-runtime.toml"
    path.write_text(text)
    assert serve_args(path).providers == PROVIDERS


def test_a_bad_target_is_the_one_line_the_config_file_shows(tmp_path, signed_bundle, keys):
    path = tmp_path / "edgekit-runtime.toml"
    path.write_text(
        f'target = "jetson-nano"\nmodel = {json.dumps(str(signed_bundle))}\ntrust = [{json.dumps(str(keys[1]))}]\n'
    )
    cmd = [sys.executable, "-m", "edgekit_runtime.cli", "serve", "--config", str(path), "--port", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: --config {path}: 'target': 'jetson-nano' is not a target: use one of ")
    shown = re.search(r"^#   (error: .*?: use one of) \.\.\.$", CONFIG.read_text(), re.MULTILINE).group(1)
    assert shown.replace("/etc/edgekit/edgekit-runtime.toml", str(path)) in line


def test_the_example_config_serves_here_on_the_cpu(tmp_path, signed_bundle, keys):
    # no GPU here: the target's TensorRT and CUDA are not in this onnxruntime build, so the CPU serves
    path = local_config(CONFIG, tmp_path, signed_bundle, keys[1])
    server = ServeProcess(["--config", str(path)], tmp_path / "serve.log")
    try:
        url = server.wait_ready()
        assert server.ready_line.endswith("(onnxruntime, CPUExecutionProvider)"), server.ready_line
        assert httpx.get(f"{url}/v2/health/ready", timeout=30).status_code == 200
    finally:
        assert server.stop() == 0, server.stderr()
    # the line the README tells Jetson users to look for when the GPU is not used
    assert "note: --target jetson-orin prefers TensorrtExecutionProvider" in server.stderr()


def readme_install_commands() -> list[list[str]]:
    """The README's ``install.sh`` command lines, as argument lists (``sudo`` and comments left out)."""
    readme = (KIT / "README.md").read_text()
    lines = re.findall(r"^(?:sudo )?bash jetson/install\.sh(.*)$", readme, re.MULTILINE)
    return [shlex.split(line.split("#")[0]) for line in lines]


def test_the_readmes_install_commands_plan_on_jetpack_6(tmp_path):
    commands = readme_install_commands()
    assert len(commands) >= 2
    root = fake_root(tmp_path, L4T_36_4)
    for argv in commands:
        done = plan(root, *[a for a in argv if a != "--check"])
        assert done.returncode == 0, (argv, done.stderr)
        assert "backend gpu" in done.stdout


def test_the_readmes_plan_is_what_install_sh_prints_on_jetpack_6(tmp_path):
    readme = (KIT / "README.md").read_text()
    shown = re.search(r"On JetPack 6.1 or newer the plan is:\n\n```\n(.*?)```", readme, re.DOTALL).group(1)
    done = plan(fake_root(tmp_path, L4T_36_4), "--from", "./edgekit_runtime-0.1.0-py3-none-any.whl")
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def test_the_readme_says_what_was_not_run_on_a_jetson():
    readme = (KIT / "README.md").read_text()
    assert "No Jetson was at hand" in readme
    for name in ("install.sh", "edgekit-runtime.service", "edgekit-runtime.toml"):
        assert f"`{name}`" in readme
    facts = (INDEX, "STATE_DIR/trt-cache", "nvpmodel", "jetson_clocks", "edgekit-runtime doctor --target jetson-orin")
    for fact in facts:
        assert fact in readme, fact
