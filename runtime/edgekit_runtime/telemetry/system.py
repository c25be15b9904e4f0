"""How the device is doing, read once per window from what Linux exposes; no psutil on the device.

- ``cpu_percent``: the whole machine's busy share since the last reading, from ``/proc/stat`` (100 is every
  core busy); ``process_cpu_percent``: this process's CPU time over the same wall time, from
  :func:`os.times` (100 is one core; it can pass 100 on several).
- ``rss_bytes``: resident memory now, from ``/proc/self/statm`` (the peak, from ``getrusage``, elsewhere).
- ``load``: the 1, 5 and 15 minute load averages.
- ``disk_free_bytes``: free space for an unprivileged user where the state directory (the outbox) lives.
- ``temperature_c``: the SoC temperature from ``/sys/class/thermal``: the zone whose type names the CPU or SoC
  (``cpu-thermal`` on a Raspberry Pi, ``CPU-therm`` on a Jetson, ``x86_pkg_temp`` on a PC), else the first zone.

What the platform does not tell is ``None``. Each reader is a seam: tests point them at fake files.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC_STAT = Path("/proc/stat")
STATM = Path("/proc/self/statm")
THERMAL = Path("/sys/class/thermal")
#: zone types, in order of preference, that name the SoC or CPU
SOC_ZONES = ("cpu-thermal", "cpu_thermal", "soc_thermal", "soc-thermal", "cpu-therm", "x86_pkg_temp", "cpu")


def _cpu_times(path: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores together, from the first line of ``/proc/stat``."""
    try:
        fields = path.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    try:
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # noqa: PLR2004  (idle + iowait)
    except (ValueError, IndexError):  # not the format Linux writes: no share rather than no window
        return None
    total = sum(values[:8])  # guest time is already inside user and nice
    return total - idle, total


def rss_bytes(path: Path = STATM) -> int | None:
    """Resident memory of this process now."""
    try:
        return int(path.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def soc_temperature(root: Path = THERMAL) -> float | None:
    """Degrees Celsius of the SoC's thermal zone, or ``None`` without one."""
    zones: dict[str, Path] = {}
    try:
        found = sorted(root.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in found:
        kind = _read(zone / "type")
        if kind is not None:
            zones.setdefault(kind.strip().lower(), zone)
    chosen = next((zones[name] for name in SOC_ZONES if name in zones), None)
    if chosen is None:
        chosen = next(iter(zones.values()), None)
    if chosen is None:
        return None
    text = _read(chosen / "temp")
    try:
        return None if text is None else round(int(text.strip()) / 1000.0, 1)
    except ValueError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@dataclass
class SystemSampler:
    """Reads the machine's numbers; CPU shares are over the time since the previous :meth:`sample`."""

    disk_path: Path
    proc_stat: Path = PROC_STAT
    statm: Path = STATM
    thermal: Path = THERMAL

    def __post_init__(self) -> None:
        """Take the first CPU reading, so that the first window has shares too."""
        self._cpu = _cpu_times(self.proc_stat)
        self._process = self._process_seconds()
        self._wall = time.monotonic()

    @staticmethod
    def _process_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def sample(self) -> dict[str, Any]:
        """The ``system`` part of a window."""
        cpu = _cpu_times(self.proc_stat)
        cpu_percent = None
        if cpu is not None and self._cpu is not None and cpu[1] > self._cpu[1]:
            cpu_percent = round(100.0 * (cpu[0] - self._cpu[0]) / (cpu[1] - self._cpu[1]), 1)
        self._cpu = cpu
        process, wall = self._process_seconds(), time.monotonic()
        elapsed = wall - self._wall
        process_percent = round(100.0 * (process - self._process) / elapsed, 1) if elapsed > 0 else None
        self._process, self._wall = process, wall
        try:
            load: list[float] | None = [round(v, 2) for v in os.getloadavg()]
        except OSError:
            load = None
        try:
            disk_free: int | None = shutil.disk_usage(self.disk_path).free
        except OSError:
            disk_free = None
        return {
            "cpu_percent": cpu_percent,
            "process_cpu_percent": process_percent,
            "rss_bytes": rss_bytes(self.statm),
            "load": load,
            "disk_free_bytes": disk_free,
            "temperature_c": soc_temperature(self.thermal),
        }
