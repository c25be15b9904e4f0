"""examples/raspberrypi on the boards' own instruction sets: the board lab (tools/board_lab.py) runs a Debian
bookworm root, arm64 or armhf, under qemu-user with the CPU model of a Pi Zero 2 (cortex-a53), a Pi 4
(cortex-a72) or a Pi 5 (cortex-a76). install.sh runs in it unchanged, from the project's source; the unit's own
ExecStart line serves there, and the host's HTTP client asks it. The roots are built once and cached under
~/.cache/edgekit/board-lab (several minutes each, cold); each test session installs into a fresh overlay."""

from __future__ import annotations

import json
import pickle
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import edgekit_runtime
from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import GOLDEN
from edgekit_runtime.golden import Golden, compare
from edgekit_runtime.signing import load_public_key
from tests.integration.fleet_rig import FleetRecorder, device_args, signed_digits
from tests.integration.rig import FLEET, Collector, Load, wait_for
from tests.integration.test_fleet_deploy import erring_digits_model
from tests.runtime.server.process import ServeProcess
from tests.tool_scripts import load_tool

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "raspberrypi"
DIGITS = ROOT / "examples" / "digits"
#: the cores of the boards edgekit meets, and whether each has the armv8.2 dot product (asimddp)
CORES = {"cortex-a53": False, "cortex-a72": False, "cortex-a76": True}
#: SDOT v0.4s, v1.16b, v2.16b (armv8.2 dot product), then RET: run from an executable page
DOT_PRODUCT_PROBE = """
import ctypes, mmap
code = (0x4E829420).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little")
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
print("sdot ran")
"""


lab = load_tool("board_lab")
ARM64 = lab.Recipe("arm64")
ARMHF = lab.Recipe("armhf")


def _run(recipe, cpu, argv, **kw):
    return lab.run(recipe, cpu, argv, timeout=kw.pop("timeout", 600), **kw)


@pytest.fixture(scope="session")
def arm64_installed(tmp_path_factory):
    """An overlay of the arm64 root in which install.sh (unchanged, from the source tree) has run, as on a Pi 4."""
    layer = tmp_path_factory.mktemp("arm64-layer")
    argv = ["bash", "/src/repo/examples/raspberrypi/install.sh", "--from", "/src/repo/runtime"]
    done = _run(ARM64, "cortex-a72", argv, binds=[(ROOT, "/src/repo")], layer=layer, timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    # the second engine: install.sh's LiteRT choice, into the same environment, no second service
    litert = _run(
        ARM64,
        "cortex-a72",
        [*argv, "--backend", "litert", "--no-service"],
        binds=[(ROOT, "/src/repo")],
        layer=layer,
        timeout=1500,
    )
    assert litert.returncode == 0, litert.stdout + litert.stderr
    return layer, done.stdout + litert.stdout


def _edgekit(*argv: str) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "edgekit"), *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def variants(tmp_path_factory, keys):
    """Signed bundles made on the host: the digits CNN as FP32, static INT8, FP16, TFLite FP32, FP16 and INT8, and a
    scikit-learn pipeline."""
    work = tmp_path_factory.mktemp("variants")
    out = work / "bundles"
    data = ["--calib", str(DIGITS / "cnn_calib.npz"), "--eval", str(DIGITS / "cnn_test.npz")]
    sign = ["--sign-key", str(keys[0])]
    _edgekit("bundle", "pack", str(DIGITS / "cnn.onnx"), *data, *sign, "--name", "cnn-fp32", "-o", str(out))
    made = work / "compressed"
    _edgekit(
        "compress",
        str(DIGITS / "cnn.onnx"),
        "--mode",
        "int8-static,fp16",
        "--to",
        "onnx,tflite",
        *data,
        "--no-bundle",
        "-o",
        str(made),
    )
    for variant in ("int8-static", "fp16", "tflite-fp32", "tflite-fp16", "tflite-int8"):
        _edgekit(
            "bundle", "pack", str(made), "--variant", variant, *data, *sign, "--name", f"cnn-{variant}", "-o", str(out)
        )
    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x.astype(np.float32), y)
    with (work / "iris.pkl").open("wb") as fh:
        pickle.dump(pipeline, fh)
    np.savez(work / "iris.npz", input=x.astype(np.float32), label=y)
    _edgekit(
        "bundle",
        "pack",
        str(work / "iris.pkl"),
        "--eval",
        str(work / "iris.npz"),
        *sign,
        "--name",
        "iris-pipeline",
        "-o",
        str(out),
    )
    (work / "signer.pub").write_bytes(keys[1].read_bytes())
    bundles = sorted(out.glob("*.edgebundle"))
    assert len(bundles) == 7, bundles
    return work, bundles


def test_the_lab_catches_an_illegal_instruction():
    on_pi5 = _run(ARM64, "cortex-a76", ["python3", "-c", DOT_PRODUCT_PROBE])
    assert on_pi5.returncode == 0, on_pi5.stderr
    assert on_pi5.stdout.strip() == "sdot ran"
    on_pi4 = _run(ARM64, "cortex-a72", ["python3", "-c", DOT_PRODUCT_PROBE])
    assert on_pi4.returncode != 0
    assert "sdot ran" not in on_pi4.stdout
    why = lab.illegal_instruction(on_pi4, "cortex-a72")
    assert why is not None, (on_pi4.returncode, on_pi4.stderr)
    assert "QEMU_CPU=cortex-a72 (Raspberry Pi 4)" in why
    assert lab.illegal_instruction(on_pi5, "cortex-a76") is None


def test_the_lab_is_arm_and_says_so():
    uname = _run(ARM64, "cortex-a72", ["python3", "-c", "import platform; print(platform.machine())"])
    assert uname.stdout.strip() == "aarch64"
    dpkg = _run(ARMHF, "cortex-a15", ["dpkg", "--print-architecture"])
    assert dpkg.stdout.strip() == "armhf"


def test_install_sh_installs_a_working_runtime_on_arm64(arm64_installed):
    _, out = arm64_installed
    assert "==> architecture arm64, Python 3.11: backend onnx" in out
    assert re.search(r"==> installed: edgekit-runtime \S+", out)
    assert "systemd is not running here" in out  # a chroot: the unit is installed, not enabled


def test_the_wheel_matrix_holds_for_a_real_install_on_64bit_python_3_11(arm64_installed):
    """What tools/wheel_matrix.py recorded for aarch64 and Python 3.11 (bookworm's), against what pip installed in
    the lab: the root has no C compiler, so each compiled requirement came as a wheel."""
    layer, _ = arm64_installed
    listed = _run(
        ARM64, "cortex-a72", ["/opt/edgekit/venv/bin/python", "-m", "pip", "list", "--format", "json"], layer=layer
    )
    installed = {canonicalize_name(d["name"]): Version(d["version"]) for d in json.loads(listed.stdout)}
    assert _run(ARM64, "cortex-a72", ["sh", "-c", "command -v cc gcc"], layer=layer).stdout == ""
    matrix = json.loads((EXAMPLE / "wheel-matrix.json").read_text())
    checked = []
    for row in matrix["rows"]:
        answer = row["answers"]["aarch64 3.11"]
        requirement = Requirement(row["label"]) if not row["deps"] else None
        if requirement is None or requirement.name == "tflite-runtime":  # not in install.sh's sets on 64-bit
            continue
        assert answer["ok"], row
        name = canonicalize_name(requirement.name)
        assert name in installed, f"{name}: the matrix has a wheel, the lab did not install it"
        assert installed[name] >= Version(answer["detail"]), (name, installed[name], answer["detail"])
        checked.append(name)
    assert {"numpy", "onnxruntime", "ai-edge-litert", "msgspec", "uvloop"} <= set(checked)


@pytest.mark.parametrize(("cpu", "dot_product"), CORES.items())
def test_doctor_reports_the_emulated_cores_features(arm64_installed, cpu, dot_product):
    layer, _ = arm64_installed
    argv = ["/opt/edgekit/venv/bin/edgekit-runtime", "doctor", "--json", "--no-probe"]
    done = _run(ARM64, cpu, argv, layer=layer)
    facts = json.loads(done.stdout)["platform"]
    assert facts["machine"] == "aarch64"
    assert "asimd" in facts["cpu_flags"]  # NEON: every core here has it
    assert ("asimddp" in facts["cpu_flags"]) is dot_product


#: run inside the lab by the installed runtime: load each bundle (verify, self-test) and keep what it answers
#: to its own golden inputs
ANSWER_GOLDEN = """
import sys
from pathlib import Path
import numpy as np
import edgekit_runtime
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import GOLDEN
from edgekit_runtime.golden import Golden
from edgekit_runtime.signing import load_trusted_keys
cpu, work = sys.argv[1], Path("/src/work")
keys = load_trusted_keys([work / "signer.pub"])
(work / "answers").mkdir(exist_ok=True)
for path in sorted((work / "bundles").glob("*.edgebundle")):
    model = edgekit_runtime.load(path, edgekit_runtime.LoadOptions(trusted_keys=keys))
    golden = Golden.from_bytes(open_bundle(path).read(GOLDEN))
    np.savez(work / "answers" / f"{cpu}-{path.stem}.npz", **model.predict(golden.inputs))
    print(path.stem, type(model.backend).__name__, "self-test passed" if model.self_test.passed else "FAILED")
"""


@pytest.mark.parametrize("cpu", CORES)
def test_every_variant_answers_its_golden_outputs_on_the_emulated_core(arm64_installed, variants, cpu):
    layer, _ = arm64_installed
    work, bundles = variants
    argv = ["/opt/edgekit/venv/bin/python", "-c", ANSWER_GOLDEN, cpu]
    done = _run(ARM64, cpu, argv, binds=[(work, "/src/work")], layer=layer, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("self-test passed") == len(bundles), done.stdout
    assert {line.split()[1] for line in done.stdout.splitlines()} == {"OrtBackend", "LiteRtBackend"}
    for path in bundles:
        golden = Golden.from_bytes(open_bundle(path).read(GOLDEN))
        with np.load(work / "answers" / f"{cpu}-{path.stem}.npz") as answers:
            for name, expected in golden.outputs.items():
                check = compare(name, expected, answers[name], golden.atol.get(name, 0.0), golden.rtol.get(name, 0.0))
                assert check.passed, f"{path.stem} on {cpu}: {check.detail}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exec_start() -> list[str]:
    unit = (EXAMPLE / "edgekit-runtime.service").read_text()
    return shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1))


@pytest.mark.parametrize("cpu", CORES)
def test_the_units_execstart_serves_the_same_answers_on_each_emulated_core(
    arm64_installed, signed_bundle, keys, tmp_path, cpu
):
    """systemd cannot run in a chroot: the unit's ExecStart line runs as its user, as the unit would start it."""
    layer, _ = arm64_installed
    port = _free_port()
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / signed_bundle.name).write_bytes(signed_bundle.read_bytes())
    (drop / "signer.pub").write_bytes(keys[1].read_bytes())
    (drop / "edgekit-runtime.toml").write_text(
        f'model = "/opt/edgekit/bundles/{signed_bundle.name}"\ntrust = ["/etc/edgekit/trusted"]\n'
        f'no-telemetry = true\n[server]\nhost = "127.0.0.1"\nport = {port}\nthreads = 2\n'
    )
    place = (
        f"cp /src/drop/{signed_bundle.name} /opt/edgekit/bundles/ && cp /src/drop/signer.pub /etc/edgekit/trusted/ "
        "&& cp /src/drop/edgekit-runtime.toml /etc/edgekit/edgekit-runtime.toml"
    )
    placed = _run(ARM64, cpu, ["sh", "-c", place], binds=[(drop, "/src/drop")], layer=layer)
    assert placed.returncode == 0, placed.stderr
    folder = lab.root(ARM64)
    line = lab.command_line(
        folder, cpu, ["runuser", "-u", "edgekit", "--", *_exec_start()], binds=[], env={}, layer=layer
    )
    server = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the emulated {cpu} did not become ready in 180 s"
            time.sleep(0.5)
        data = np.load(DIGITS / "mlp_test.npz")
        x = data[next(iter(data.files))][:64].astype(np.float32)
        local = edgekit_runtime.load(
            signed_bundle, edgekit_runtime.LoadOptions(trusted_keys=[load_public_key(keys[1])])
        )
        name = local.inputs[0].name
        body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        answer = httpx.post(f"{url}/v2/models/{local.name}/infer", json=body, timeout=60).json()
        expected = local.predict({name: x})
        for output in answer["outputs"]:
            got = np.asarray(output["data"]).reshape(output["shape"])
            np.testing.assert_allclose(got, expected[output["name"]], rtol=1e-4, atol=1e-5)
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_fleet_reaches_an_emulated_pi4(arm64_installed, mosquitto, tmp_path):
    """A device on the emulated Pi 4 joins a fleet on the host's Mosquitto: its telemetry is stored by the
    collector, it takes a signed deploy over MQTT chunks, and rolls back a bundle that fails under traffic."""
    layer, _ = arm64_installed
    public, bundles = signed_digits(tmp_path)
    erring = pack_source(
        str(erring_digits_model(tmp_path / "erring.onnx")),
        tmp_path,
        BundleOptions(name="digits-mlp", version="3.0.0", signing_key=public.with_suffix(".key")),
        PackData(calib=DIGITS / "mlp_calib.npz"),
    ).path
    collector = Collector(mosquitto, tmp_path / "telemetry.db", tmp_path / "collector.log")
    operator = FleetRecorder(mosquitto.port, FLEET, sign_key=public.with_suffix(".key"))
    name = "lab-pi4"
    args = device_args(bundles["1.0.0"], public, mosquitto, FLEET, name, tmp_path, "--deploy-watch", "3")
    folder = lab.root(ARM64)
    lab.prepare(folder)
    serve = ["/opt/edgekit/venv/bin/edgekit-runtime", "serve", *args, "--telemetry-interval", "1"]
    line = lab.command_line(folder, "cortex-a72", serve, binds=[(tmp_path, str(tmp_path))], env={}, layer=layer)
    device = ServeProcess(args, tmp_path / "device.log", argv=line)
    rows = np.load(DIGITS / "mlp_test.npz")["input"].copy()
    rows[:, 0] = 16.0  # what the digits models answer, and the erring one fails on
    load = None
    try:
        collector.subscribed(mosquitto)
        device.wait_ready(180)
        load = Load(device.url, 1_000_000, threads=1).start(rows)
        operator.wait_online(name)
        wait_for(lambda: sum(r[1] for r in collector.rows(name)) > 50, 90, "telemetry stored", collector.log)
        deployed = operator.deploy(name, bundles["2.0.0"], via="mqtt")
        operator.wait_status(deployed, "committed", name, timeout=180)
        wait_for(lambda: operator.version(name) == "2.0.0", 30, "the state to say 2.0.0")
        refused = operator.deploy(name, erring, via="mqtt")
        wait_for(lambda: {"committed", "rolled_back"} & set(operator.statuses(refused, name)), 180, "a verdict")
        done_before = load.done
        wait_for(lambda: load.done > done_before + 20, 60, "answers after the rollback")
    finally:
        if load is not None:
            load.halt()
        device.stop()
        operator.close()
        collector.stop()
    assert operator.statuses(refused, name)[-1] == "rolled_back"
    assert operator.states[name]["model"]["version"] == "2.0.0"
    stored = collector.rows(name)
    assert [seq for seq, _, _ in stored] == list(range(1, len(stored) + 1))  # no window lost


def test_install_sh_on_armhf_says_what_a_32bit_pi_gets():
    done = _run(
        ARMHF,
        "cortex-a15",
        ["bash", "/src/repo/examples/raspberrypi/install.sh", "--check"],
        binds=[(ROOT, "/src/repo")],
    )
    assert done.returncode == 0, done.stderr
    assert "==> architecture armhf, Python 3.11: backend litert" in done.stdout
    assert "tflite-runtime" in done.stdout
    assert "piwheels" in done.stdout
    refused = _run(
        ARMHF,
        "cortex-a15",
        ["bash", "/src/repo/examples/raspberrypi/install.sh", "--check", "--backend", "onnx"],
        binds=[(ROOT, "/src/repo")],
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        (
            "error: there is no onnxruntime wheel for 32-bit Arm (armhf): use --backend litert with .tflite "
            "bundles, or install the 64-bit Raspberry Pi OS"
        )
    ]


def test_a_failed_install_on_armhf_is_one_line_not_a_pip_backtrace(tmp_path):
    """Without piwheels (this machine reaches PyPI only), PyPI has no armv7l numpy: pip fails; install.sh says so
    in one line, keeping pip's account in a log."""
    install = ["bash", "/src/repo/examples/raspberrypi/install.sh", "--from", "/src/repo/runtime", "--no-service"]
    done = _run(ARMHF, "cortex-a15", install, binds=[(ROOT, "/src/repo")], layer=tmp_path, timeout=1200)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        (
            "error: pip could not install /src/repo/runtime for 32-bit Arm with Python 3.11 (its log: "
            "/opt/edgekit/pip-install.log): numpy, uvloop, httptools and msgspec come from piwheels.org, which "
            "must be reachable; or install the 64-bit Raspberry Pi OS"
        )
    ]
    assert (tmp_path / "upper" / "opt" / "edgekit" / "pip-install.log").read_text().strip()
