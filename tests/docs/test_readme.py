"""The README's shell blocks, each run as written in a scratch folder (tests/docs/shell.py says how).

The quickstart is tests/docs/test_quickstart.py; the fleet block, tests/integration/test_readme_fleet.py.
Placeholders are given real files under the names the README uses (``model.pkl``, ``test.npz``,
``cnn-1.0.0.edgebundle``), or swapped for them where they name a file the repository has (``model.onnx``).
"""

from __future__ import annotations

import shlex
import shutil

import httpx

from tests.docs.blocks import ROOT, find
from tests.docs.conftest import QUICKSTART, scratch
from tests.docs.models import classifier
from tests.docs.shell import QUICK_COMPRESS, DocShell, Tweak
from tests.docs.stores import windows

README = "README.md"
DIGITS = {
    "model.onnx": "examples/digits/cnn.onnx",
    "calib.npz": "examples/digits/cnn_calib.npz",
    "test.npz": "examples/digits/cnn_test.npz",
}


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def test_the_opening_lines_are_the_quickstarts_demo_and_what_ci_runs():
    """``demo`` runs in the quickstart (tests/docs/test_quickstart.py); ``test`` is CI itself (``.ci/run``)."""
    demo = words(find(README, QUICKSTART).commands()[0])
    ci = [words(line) for line in (ROOT / ".ci" / "run").read_text().splitlines() if "tools/dev.sh" in line]
    assert demo == ["bash", "tools/dev.sh", "demo"]
    assert ci == [["exec", "bash", "tools/dev.sh", "test"]]
    for command in find(README, "edgekit").commands():
        assert words(command) in (demo, ci[0][1:]), f"no test runs this opening line: {command}"


def test_compress_a_model(tmp_path):
    work = scratch(tmp_path / "repo", "examples/digits")
    with DocShell(work, swaps=DIGITS) as shell:
        _, inspected, _ = shell.play(find(README, "Compress a model"), QUICK_COMPRESS)
    assert "input" in inspected.out
    assert "logits" in inspected.out
    written = sorted(path.name for path in (work / "out").iterdir())
    assert written == ["cnn-1.0.0.edgebundle", "model.onnx", "report.json"]  # what the paragraph under it says


def test_start_from_what_you_have_end_with_a_signed_bundle(tmp_path):
    work = scratch(tmp_path / "repo", "tools/digits_cnn.py")
    classifier(work / "model.pkl", work / "test.npz")
    with DocShell(work) as shell:
        results = shell.play(find(README, "Start from what you have, end with a signed bundle"), QUICK_COMPRESS)
    verified, inspected = results[-2:]
    assert "out/churn-3.1.0.edgebundle" in verified.out
    assert "churn" in inspected.out
    assert "3.1.0" in inspected.out
    assert (work / "out" / "cnn" / "digits_cnn-1.0.0.edgebundle").is_file()


def test_serve_it_on_the_device(tmp_path, quickstart):
    device = quickstart.device(tmp_path / "device")
    with DocShell(device) as shell:
        _, served = shell.play(find(README, "Serve it on the device"))
        assert served.server is not None
        ready = httpx.get(f"{served.server.url}/v2/models/cnn/ready", timeout=10)
    assert ready.status_code == 200
    assert served.out.startswith("serving cnn 1.0.0 on http://127.0.0.1:")


def test_watch_it_from_the_host(tmp_path, quickstart, mosquitto):
    device = quickstart.device(tmp_path / "device")  # the host too: it has the quickstart's fleet.key
    shutil.copy2(quickstart.work / "fleet.key", device / "fleet.key")
    db = device / "telemetry.db"
    tweaks = {
        "edgekit-runtime serve": Tweak(extra=("--telemetry-interval", "0.5")),  # a window every half second, not 10 s
        "edgekit telemetry collect": Tweak(stop_when=lambda: windows(db, "pi-7") >= 2),  # until Ctrl-C
    }
    with DocShell(device, swaps={"mqtt://broker:1883": mosquitto.url}) as shell:
        _, collected, shown = shell.play(find(README, "Watch it from the host"), tweaks)
    assert collected.out.startswith("stopped: ")
    assert "pi-7" in shown.out
    assert "cnn" in shown.out
