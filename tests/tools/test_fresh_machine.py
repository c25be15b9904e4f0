"""The README's two commands on a fresh machine: a bare Debian bookworm amd64 root (tools/board_lab.py: debootstrap
minbase with python3, python3-venv, ca-certificates and procps; no PostgreSQL, no Mosquitto, no browser), a clean
copy of the project in it, then ``bash tools/dev.sh demo`` as an ordinary user and ``bash tools/dev.sh test`` as
root on a few tests that between them need every system package the test command installs.

Slow (several minutes: apt, pip and the linters run for real), so marked ``fresh_machine``:
``pytest -m 'not fresh_machine'`` leaves it out. Each run has a fresh overlay over the cached root, removed after a
pass. To save time the host's board-lab roots and fetched models are bound in (``~/.cache/edgekit``), and pip
gets the host's settings (``PIP_*``, and ``/opt/wheels`` read-only where it exists: a CPU torch wheel here). The
whole run's output is kept in ``out/test-artifacts/fresh-machine.log``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.tool_scripts import load_tool

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "test-artifacts"
lab = load_tool("board_lab")
AMD64 = lab.Recipe("amd64")
WHEELS = Path("/opt/wheels")
GIT = shutil.which("git") or "git"
MODELS = Path(os.environ.get("EDGEKIT_MODEL_CACHE", Path.home() / ".cache" / "edgekit" / "models"))
#: one test or two for each system package ``dev.sh test`` installs
SELECTION = [
    # PostgreSQL (a server the session starts itself)
    "tests/edgekit/telemetry/test_store.py::test_postgres_bad_url",
    "tests/edgekit/telemetry/test_store.py::test_postgres_payload_is_jsonb_and_opening_twice_is_fine",
    "tests/edgekit/telemetry/test_store.py::test_postgres_reconnects_after_losing_its_connection",
    "tests/edgekit/fleet/test_dashboard_api.py::test_postgres_answers_as_sqlite_does",
    # Mosquitto and PostgreSQL
    "tests/edgekit/telemetry/test_collector.py::test_postgres_store_exactly_once",
    # Chromium and its driver
    "tests/edgekit/fleet/test_dashboard_browser.py",
    # shellcheck and systemd-analyze
    "tests/examples/test_raspberrypi.py::test_install_sh_passes_shellcheck",
    "tests/examples/test_raspberrypi.py::test_the_unit_passes_systemd_analyze_verify",
    # wrk
    "tests/tools/test_bench_telemetry.py",
    # debootstrap, qemu-user-static and binfmt: the Arm roots dev.sh builds (or finds cached)
    "tests/examples/test_raspberrypi_emulated.py::test_the_lab_is_arm_and_says_so",
]
#: what the copy runs, in the root: a user without sudo for the demo, then root for the tests
SCRIPT = """
set -eu
# as in Debian's container images: packages do not start services here (this is a chroot, not a booted machine)
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
useradd --create-home dev
cp -r /src/edgekit /home/dev/edgekit && chown -R dev:dev /home/dev/edgekit
cd /home/dev/edgekit
echo "== demo, as user dev"
start=$(date +%s)
runuser -u dev -- bash tools/dev.sh demo
echo "== demo took $(( $(date +%s) - start )) s"
echo "== test, as root"
start=$(date +%s)
bash tools/dev.sh test -p no:cacheprovider {selection}
echo "== test took $(( $(date +%s) - start )) s"
"""


def working_tree(dest: Path) -> Path:
    """What a clean clone of the working tree holds: tracked and new files, none that git ignores."""
    listed = subprocess.run(
        [GIT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in git
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name, follow_symlinks=False)
    return dest


def host_settings() -> dict[str, str]:
    """The host's pip settings and proxies, which a machine on this network would have as well."""
    names = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    return {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in names}


@pytest.mark.fresh_machine
def test_a_fresh_debian_runs_the_demo_and_the_tests(tmp_path):
    folder = lab.root(AMD64)
    layer = tmp_path / "layer"
    lab.prepare(layer / "upper")
    scratch = tmp_path / "tmp"  # the root's /tmp on the host's disk: the board lab's overlays cannot sit on one
    scratch.mkdir(mode=0o1777)
    scratch.chmod(0o1777)
    lab.CACHE.mkdir(parents=True, exist_ok=True)
    MODELS.mkdir(parents=True, exist_ok=True)
    binds = [
        (working_tree(tmp_path / "edgekit"), "/src/edgekit"),
        (scratch, "/tmp"),  # noqa: S108 (the root's own /tmp)
        (lab.CACHE, "/root/.cache/edgekit/board-lab"),
        (MODELS, "/root/.cache/edgekit/models"),
    ]
    read_only = [(WHEELS, str(WHEELS))] if WHEELS.is_dir() else []
    script = SCRIPT.replace("{selection}", shlex.join(SELECTION))
    line = lab.command_line(
        folder, lab.NATIVE, ["bash", "-c", script], binds=binds, env=host_settings(), layer=layer, read_only=read_only
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "fresh-machine.log"
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(line, stdout=out, stderr=subprocess.STDOUT, timeout=3600, check=False)
    took = time.monotonic() - started
    text = log.read_text(errors="replace")
    tail = "\n".join(text.splitlines()[-60:])
    assert done.returncode == 0, f"exit {done.returncode} after {took:.0f} s; the end of {log}:\n{tail}"

    demo, _, tests = text.partition("== test, as root")
    # the demo: no root, no apt-get, progress while .venv is made, then the report's last line
    assert "setting up /home/dev/edgekit/.venv (first run: about a minute)…" in demo
    assert "apt-get" not in demo
    assert re.search(r"^wrote out/digits-cnn/model\.onnx \(int8-static\): ", demo, re.MULTILINE), tail
    # the tests: one line saying what apt-get installs, and none of apt's or debconf's own
    assert re.search(
        r"^installing with apt-get \(once; a few hundred MB\): .*\bpostgresql\b.*\bchromium\b", tests, re.MULTILINE
    )
    assert "debconf" not in text
    assert "setting up /home/dev/edgekit/.venv with the test tools" in tests
    summary = re.search(r"^=+ (\d+) passed in [\d.]+s", tests, re.MULTILINE)
    assert summary, tail
    assert not re.search(r"\b(failed|error|errors|skipped)\b", summary.group(0))
    # PostgreSQL came as binaries only: Debian made no 'main' cluster, so none was started
    assert not list((layer / "upper" / "etc" / "postgresql").glob("*/main")), "Debian made a 'main' cluster"
    shutil.rmtree(layer, ignore_errors=True)
    print(f"fresh machine: {took:.0f} s", *re.findall(r"^== .* took \d+ s$", text, re.MULTILINE), sep="\n")
