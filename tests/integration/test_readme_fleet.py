"""The README's fleet quickstart, run line by line as written: signing on, one broker account per device.

The ``edgekit`` and ``edgekit-runtime`` lines run as processes in a scratch folder (with the repo's
``examples/digits`` copied in), with a free port in place of 1883; the broker line is the one exception: the
test's own Mosquitto reads the ``mosquitto.conf`` that ``edgekit fleet provision`` wrote (it runs as root here,
where Mosquitto would otherwise switch to a user who cannot read the password files). The device's HTTP port
is picked by the kernel (``--port 0``) and its state goes to the scratch folder (``--state-dir``, as
:class:`ServeProcess` gives every server), so nothing of this machine's is touched. The rollout must exit 0
with the device serving version 2.0.0.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.brokers import Mosquitto, free_port
from tests.integration.rig import wait_for
from tests.runtime.server.process import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def quickstart() -> list[str]:
    """The lines of the README's first code block under 'Roll a model out to the fleet'."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Roll a model out to the fleet") :]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the README's fleet section has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_fleet_quickstart_rolls_out_a_signed_bundle(tmp_path, monkeypatch):
    lines = quickstart()
    assert [shlex.split(line, comments=True)[0] for line in lines] == [
        "edgekit", "edgekit", "edgekit", "edgekit", "mosquitto", "edgekit-runtime", "edgekit", "edgekit"
    ]  # fmt: skip
    shutil.copytree(ROOT / "examples" / "digits", tmp_path / "examples" / "digits")
    port = str(free_port())
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env = dict(os.environ)
    background: list[subprocess.Popen[bytes] | ServeProcess] = []
    broker: Mosquitto | None = None
    device: ServeProcess | None = None
    try:
        for line in lines:
            words = [word.replace("1883", port) for word in shlex.split(line, comments=True)]
            if words[0] == "mosquitto":
                broker = Mosquitto(tmp_path / "mosquitto", int(port), include=tmp_path / "broker")
                broker.start()
            elif words[0] == "edgekit-runtime":
                assert words[-1] == "&"
                args = [*words[2:-1], "--port", "0"]
                device = ServeProcess(args, tmp_path / "device.log", cwd=tmp_path)
                background.append(device)
                device.wait_ready()
            elif words[-1] == "&":
                with (tmp_path / "collector.log").open("wb") as log:  # the child keeps its own copy
                    background.append(subprocess.Popen(words[:-1], cwd=tmp_path, env=env, stdout=log, stderr=log))
                wait_for(lambda: _stored_state(tmp_path / "telemetry.db"), 30, "pi-7's state in telemetry.db")
            else:
                done = subprocess.run(
                    words, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert device is not None
        version = httpx.get(f"{device.url}/v2/models/digits-mlp", timeout=10).json()["versions"]
        assert version == ["2.0.0"]
        assert (tmp_path / "state-device" / "commands.json").is_file()  # the signed commands it took, by nonce
        wait_for(lambda: _windows(tmp_path / "telemetry.db") > 0, 30, "pi-7's windows stored")
    finally:
        for process in reversed(background):
            if isinstance(process, ServeProcess):
                process.stop()
            elif process.poll() is None:
                process.terminate()
                process.wait(20)
        if broker is not None:
            broker.stop()


def _stored_state(db: Path) -> bool:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT 1 FROM device_state WHERE device = 'pi-7'").fetchone() is not None
    except sqlite3.OperationalError:
        return False


def _windows(db: Path) -> int:
    with sqlite3.connect(db, timeout=5) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM telemetry WHERE device = 'pi-7'").fetchone()[0])
