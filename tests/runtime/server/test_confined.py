"""A Raspberry Pi's budget on this machine: the server pinned to one CPU (taskset) under a memory cap (prlimit).

``prlimit --as`` caps the address space, a stricter limit than resident memory: here the server maps about
190 MiB and keeps about 85 MiB resident (examples/raspberrypi/README.md has the measured numbers). The
systemd unit in examples/raspberrypi caps it with a cgroup (``MemoryMax=``) on the device itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from edgekit_runtime import LoadOptions, load
from edgekit_runtime.signing import load_trusted_keys
from tests.runtime.server.process import ServeProcess

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
#: the address space the server may map: little above what it needs (a cap it cannot start under is tested too)
MEMORY_CAP = 256 << 20


def limits(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` and ``/proc/PID/limits`` lines by name."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        found[key] = value.strip()
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            found["Max address space"] = line.split()[3]
    return found


@pytest.fixture
def confined(tmp_path, signed_bundle, keys):
    """``taskset -c CPU prlimit --as=CAP -- python -m edgekit_runtime.cli serve BUNDLE``, ready."""
    for tool in ("taskset", "prlimit"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install util-linux")
    cpu = min(os.sched_getaffinity(0))
    prefix = ["taskset", "-c", str(cpu), "prlimit", f"--as={MEMORY_CAP}", "--"]
    args = [str(signed_bundle), "--port", "0", "--trust", str(keys[1]), "--no-telemetry"]
    server = ServeProcess(args, tmp_path / "confined.log", prefix=prefix)
    server.wait_ready()
    yield server, cpu
    assert server.stop() == 0, server.stderr()


def test_serves_correctly_on_one_cpu_under_a_memory_cap(confined, signed_bundle, keys):
    server, cpu = confined
    facts = limits(server.proc.pid)  # taskset and prlimit exec the server: it keeps their pid
    assert facts["Cpus_allowed_list"] == str(cpu)
    assert facts["Max address space"] == str(MEMORY_CAP)
    model = load(signed_bundle, LoadOptions(trusted_keys=load_trusted_keys([keys[1]])))
    assert server.ready_line.endswith(f"(onnxruntime, {', '.join(model.backend.devices)})")

    samples = np.load(DIGITS / "mlp_test.npz")["input"][:32]
    want = model.predict({"input": samples})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(5):  # more than one request: the inference threads start on the first ones
            simple = http.post("/predict", json={"features": samples.tolist()})
            assert simple.status_code == 200, simple.text
            assert simple.json()["prediction"] == want["label"].tolist()
        oip = http.post(
            f"/v2/models/{model.name}/infer",
            json={
                "inputs": [
                    {
                        "name": "input",
                        "shape": list(samples.shape),
                        "datatype": "FP32",
                        "data": samples.ravel().tolist(),
                    }
                ]
            },
        )
    assert oip.status_code == 200, oip.text
    outputs = {o["name"]: o for o in oip.json()["outputs"]}
    np.testing.assert_allclose(
        np.reshape(outputs["probabilities"]["data"], (32, 10)), want["probabilities"], rtol=1e-6, atol=1e-7
    )
    resident = int(limits(server.proc.pid)["VmRSS"].split()[0]) * 1024
    assert resident < MEMORY_CAP


def test_a_cap_too_small_stops_the_start_not_a_request(tmp_path, signed_bundle, keys):
    cpu = min(os.sched_getaffinity(0))
    prefix = ["taskset", "-c", str(cpu), "prlimit", f"--as={64 << 20}", "--"]
    args = [str(signed_bundle), "--port", "0", "--trust", str(keys[1]), "--no-telemetry"]
    server = ServeProcess(args, tmp_path / "starved.log", prefix=prefix)
    assert server.proc.wait(60) != 0
    server.stop()
    assert "serving " not in server.stderr()
