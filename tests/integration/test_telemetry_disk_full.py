"""Issue 17 item 8's done-when: a full state disk loses windows, never silently.

The outbox cannot store a window while the disk is full; the window is lost, counted in ``outbox.dropped`` at
once, and the count is stored with the first window written once there is space again. The collector must see
it: every window closed is stored there or counted in ``dropped``, every request is in a stored window or in
the count the runtime logged, and serving goes on meanwhile.

Real parts: Mosquitto (``tests/brokers.py``), ``edgekit telemetry collect`` storing into SQLite, and the
runtime's telemetry. The first test fills the outbox in process (SQLite's ``max_page_count``, which answers
"database or disk is full" as a full disk does: it runs anywhere); the second serves from a real
``edgekit-runtime serve`` whose state directory is a tiny tmpfs filled to the last byte (it needs root and
``mount``, and is skipped without them). The broker is stopped while the disk is full: a window the broker
acknowledges frees its pages for the next, so only a backlog makes the outbox grow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import REFERENCE
from edgekit_runtime.mqtt.settings import MqttSettings
from edgekit_runtime.telemetry.publisher import PublisherSettings
from edgekit_runtime.telemetry.recorder import RecorderSettings
from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings
from tests.integration.rig import DEVICE, FLEET, Collector, Load, outbox_rows, runtime, wait_for

if TYPE_CHECKING:
    from edgekit_runtime.telemetry.outbox import Outbox

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
MODEL = {"name": "digits-mlp", "version": "1.0.0", "sha256": "0" * 64, "backend": "onnxruntime"}
#: the runtime's line once a window is stored again: how many windows, and requests, were lost before it
RECOVERED = re.compile(r"stores windows again \(seq (\d+)\); (\d+) before it \((\d+) requests\) were lost")


class Lines(logging.Handler):
    """The telemetry logger's lines (its own handler: an earlier in-process server may stop propagation)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def lines():
    logger = logging.getLogger("edgekit_runtime.telemetry")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def disk_full(box: Outbox) -> None:
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")


def space_again(box: Outbox) -> None:
    box._db.execute("PRAGMA max_page_count = 1000000")


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


def check_collected(collector: Collector, recovered: re.Match[str], requests: int) -> None:
    """Everything adds up at the collector: windows stored or counted as dropped, requests stored or lost."""
    seq, lost_windows, lost_requests = (int(group) for group in recovered.groups())
    stored = collector.rows()
    seqs = [s for s, _, _ in stored]
    assert seqs[0] == 1
    assert contiguous(seqs)  # a lost window used up no sequence number: the count is its only trace
    dropped = {s: d for s, _, d in stored}
    # a window stored before the disk filled but sent after reports the loss already (the count is the one at
    # sending time); the first window written again, and every one after, surely does
    assert all(d in (0, lost_windows) for s, d in dropped.items() if s < seq)
    assert all(d == lost_windows for s, d in dropped.items() if s >= seq)
    assert sum(r for _, r, _ in stored) + lost_requests == requests


def test_windows_lost_to_a_full_outbox_arrive_as_dropped(  # noqa: PLR0917  (fixtures)
    bundle, rows, mosquitto, collector, lines, tmp_path
):
    reference = json.loads(open_bundle(bundle).read(REFERENCE))
    settings = TelemetrySettings(
        state_dir=tmp_path / "state",
        fleet=FLEET,
        device=DEVICE,
        recorder=RecorderSettings(interval=0.2),
        mqtt=MqttSettings(mosquitto.url),
        publisher=PublisherSettings(backoff_initial=0.1, backoff_max=0.5),
    )
    telemetry = Telemetry(settings, MODEL, reference)
    recorded = 0

    def load(seconds: float) -> None:
        nonlocal recorded
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            row = rows[recorded % len(rows)][None]
            telemetry.record(0.001, inputs={"input": row}, first_output=np.array([recorded % 10]))
            recorded += 1
            time.sleep(0.002)

    def load_until(done, what: str) -> None:
        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{lines.text}"
            load(0.1)

    box = telemetry.outbox
    telemetry.start()
    try:
        load_until(collector.rows, "windows at the collector before the disk fills")
        mosquitto.stop(signal.SIGTERM)  # a backlog: the outbox must grow
        disk_full(box)
        load_until(lambda: box.lost >= 3, "three windows lost")  # recording goes on: nothing raised
        assert box.dropped == box.lost
        space_again(box)
        load_until(lambda: RECOVERED.search(lines.text), "a window stored again")
        load(0.5)
        mosquitto.start()
        wait_for(lambda: box.count == 0, 60, "the backlog to drain", collector.log)
    finally:
        telemetry.stop()  # the open window goes too, in the drain time
    assert outbox_rows(tmp_path / "state") == []
    recovered = RECOVERED.search(lines.text)
    assert recovered is not None
    assert int(recovered.group(2)) >= 3
    wait_for(lambda: sum(r[1] for r in collector.rows()) >= recorded - int(recovered[3]), 60, "every window")
    check_collected(collector, recovered, recorded)
    assert sum("lost:" in line for line in lines.lines) == 1  # one warning when the losses began


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs as the runtime's state directory (skipped where this process cannot mount one)."""
    folder = tmp_path / "state"
    folder.mkdir()
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (root and CAP_SYS_ADMIN needed): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run([umount, "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler


def test_a_runtime_whose_state_disk_fills_up_serves_on_and_reports_the_loss(
    bundle, rows, mosquitto, collector, tiny_disk
):
    server = runtime(bundle, mosquitto, tiny_disk.parent, interval=0.2)  # its state in the tmpfs
    log = server.log
    load = Load(server.url, 1_000_000, pause=0.005).start(rows)
    try:
        wait_for(collector.rows, 30, "windows before the disk fills", collector.log)
        mosquitto.stop(signal.SIGTERM)  # a backlog: the outbox must grow
        filler = fill(tiny_disk)
        wait_for(lambda: "lost:" in log.read_text(), 30, "a window lost to the full disk", log)
        answered = load.done
        wait_for(lambda: load.done > answered + 100, 30, "requests answered while the disk is full", log)
        filler.unlink()
        wait_for(lambda: RECOVERED.search(log.read_text()), 30, "a window stored again", log)
        mosquitto.start()
        seq = int(RECOVERED.search(log.read_text())[1])
        wait_for(lambda: any(s >= seq for s, _, _ in collector.rows()), 60, "the backlog at the collector", log)
    finally:
        sent = load.stop()
        assert server.stop() == 0
    recovered = RECOVERED.search(log.read_text())
    assert recovered is not None
    assert "database or disk is full" in log.read_text()
    wait_for(lambda: sum(r[1] for r in collector.rows()) >= sent - int(recovered[3]), 60, "every window")
    check_collected(collector, recovered, sent)
    assert outbox_rows(tiny_disk) == []
