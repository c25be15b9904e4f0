"""docs/runtime.md and docs/targets.md: their shell blocks, run as written in a scratch folder.

The bundles they name are the README quickstart's signed digits CNN (``cnn-1.0.0.edgebundle``, and
``digits-1.0.0.edgebundle`` in runtime.md), under the names the docs give them; ``/etc/edgekit/keys`` is a
folder holding its ``fleet.pub``; ``model.onnx`` is the digits MLP. The footprint block's fresh virtual
environment cannot be made here (pip needs the network): its pip line is checked, and the footprint is taken
of the test's own environment. The board lab's block (docs/targets.md) is listed in tests/docs/test_coverage.py.
"""

from __future__ import annotations

import json
import shutil
import sys

import httpx

from tests.docs.blocks import find
from tests.docs.conftest import scratch
from tests.docs.shell import QUICK_COMPRESS, DocShell, Tweak

RUNTIME = "docs/runtime.md"
TARGETS = "docs/targets.md"


def test_runtime_md_install_lines_name_real_extras(tmp_path):
    with DocShell(tmp_path) as shell:
        results = shell.play(find(RUNTIME, "The device runtime (`edgekit-runtime`)"))
    assert [result.out for result in results] == [
        "checked, not run: edgekit-runtime[onnx]",
        "checked, not run: edgekit-runtime[litert]",
    ]


def test_runtime_md_footprint(tmp_path, quickstart):
    work = scratch(tmp_path / "repo", "tools/footprint.py")
    (work / "out" / "digits-cnn").mkdir(parents=True)
    shutil.copy2(quickstart.bundle, work / "out" / "digits-cnn")
    swaps = {"/tmp/rtvenv": sys.prefix}  # noqa: S108  (the doc's path, swapped for a real environment)
    with DocShell(work, swaps=swaps) as shell:
        installed, measured = shell.play(find(RUNTIME, "Footprint"))
    assert installed.out == "checked, not run: edgekit-runtime[onnx]"
    assert "| onnxruntime |" in measured.out
    assert "cnn 1.0.0 (onnxruntime): RSS after load" in measured.out


def test_runtime_md_serving(tmp_path, quickstart):
    device = quickstart.device(tmp_path / "device")
    (device / "cnn-1.0.0.edgebundle").rename(device / "digits-1.0.0.edgebundle")
    (device / "keys").mkdir()
    (device / "fleet.pub").rename(device / "keys" / "fleet.pub")
    shutil.copy2(quickstart.work / "examples" / "digits" / "mlp.onnx", device / "model.onnx")
    with DocShell(device, swaps={"/etc/edgekit/keys": "keys"}) as shell:
        signed, plain = shell.play(find(RUNTIME, "Serving: `edgekit-runtime serve`"))
        assert signed.server is not None
        assert plain.server is not None
        answers = [httpx.get(f"{r.server.url}/v2/health/ready", timeout=10).status_code for r in (signed, plain)]
    assert signed.out.startswith("serving cnn 1.0.0 on http://127.0.0.1:")
    assert plain.out.startswith("serving model ")
    assert answers == [200, 200]


def test_targets_md_host_and_device_lines_for_a_pi4(tmp_path, quickstart):
    work = quickstart.device(scratch(tmp_path / "repo", "examples/digits"))
    swaps = {"model.onnx": "examples/digits/cnn.onnx", "calib.npz": "examples/digits/cnn_calib.npz"}
    tweaks = {
        **QUICK_COMPRESS,
        "edgekit-runtime doctor": Tweak(expect=1),  # "is this the board it assumes?" No: the test machine is x86-64
        "edgekit-runtime bench": Tweak(extra=("--seconds", "0.2", "--cold-starts", "1")),  # quicker figures
    }
    with DocShell(work, swaps=swaps) as shell:
        compressed, doctor, served, _ = shell.play(find(TARGETS, TARGETS_HEADING), tweaks)
    assert "tflite" in compressed.out  # the Pi 4 profile tries TFLite INT8 first
    assert "--target rpi4: this is x86_64, rpi4 is aarch64" in doctor.out
    assert served.out.startswith("serving cnn 1.0.0 on http://127.0.0.1:")
    (figures,) = work.glob("bench-*.json")
    assert json.loads(figures.read_text())["settings"]["target"] == "rpi4"


TARGETS_HEADING = "Target profiles: `--target rpi4 | rpi5 | rpi-zero2 | jetson-orin | x86`"
