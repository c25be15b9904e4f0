"""The system numbers, read from fake /proc and /sys trees: what Linux tells, and None for what it does not."""

from __future__ import annotations

import os

import pytest

from edgekit_runtime.telemetry.system import SystemSampler, rss_bytes, soc_temperature

KEYS = {"cpu_percent", "process_cpu_percent", "rss_bytes", "load", "disk_free_bytes", "temperature_c"}


def stat_line(user, nice, system, idle, iowait, *, guest=0):
    fields = (user, nice, system, idle, iowait, 0, 0, 0, guest, 0)  # irq, softirq, steal, guest, guest_nice
    return "cpu  " + " ".join(map(str, fields)) + "\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n"


def zones(root, *entries):
    """``thermal_zoneN`` folders with a ``type`` and a ``temp`` (``None``: that file is missing)."""
    for index, (kind, temp) in enumerate(entries):
        zone = root / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        if kind is not None:
            (zone / "type").write_text(kind + "\n")
        if temp is not None:
            (zone / "temp").write_text(temp + "\n")
    (root / "cooling_device0").mkdir(parents=True, exist_ok=True)  # not a zone
    return root


@pytest.fixture
def fake(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(stat_line(100, 0, 100, 700, 100, guest=5000))
    statm = tmp_path / "statm"
    statm.write_text("5000 250 100 10 0 300 0\n")
    thermal = zones(tmp_path / "thermal", ("acpitz", "40000"), ("cpu-thermal", "48312"))
    return SystemSampler(tmp_path, proc_stat=stat, statm=statm, thermal=thermal)


def test_a_sample_reads_every_number(fake):
    fake.proc_stat.write_text(stat_line(300, 0, 300, 1200, 200, guest=9000))
    sample = fake.sample()
    assert set(sample) == KEYS
    # busy went 200 -> 600 of a total 1000 -> 2000 jiffies (iowait is idle time, guest is inside user)
    assert sample["cpu_percent"] == 40.0
    assert sample["rss_bytes"] == 250 * os.sysconf("SC_PAGE_SIZE")
    assert sample["temperature_c"] == 48.3
    assert sample["disk_free_bytes"] > 0
    assert len(sample["load"]) == 3
    assert sample["process_cpu_percent"] >= 0


def test_cpu_percent_is_over_the_time_between_two_readings(fake):
    fake.proc_stat.write_text(stat_line(150, 0, 150, 1100, 100))  # +100 busy of +500
    assert fake.sample()["cpu_percent"] == 20.0
    fake.proc_stat.write_text(stat_line(550, 0, 550, 1100, 100))  # +800 busy of +800
    assert fake.sample()["cpu_percent"] == 100.0
    assert fake.sample()["cpu_percent"] is None  # no time passed for the CPUs: no share


@pytest.mark.parametrize(
    "text",
    ["", "intr 1 2 3\n", "cpu  1 2 3\n", "cpu  1 2 x 4 5 6 7 8\n"],
    ids=["empty", "no-cpu-line", "too-few-fields", "not-a-number"],
)
def test_an_unreadable_proc_stat_gives_no_cpu_share(tmp_path, text):
    stat = tmp_path / "stat"
    stat.write_text(stat_line(100, 0, 100, 700, 100))
    sampler = SystemSampler(tmp_path, proc_stat=stat, statm=tmp_path / "statm", thermal=tmp_path / "none")
    stat.write_text(text)
    sample = sampler.sample()
    assert sample["cpu_percent"] is None
    stat.write_text(stat_line(200, 0, 200, 1400, 200))
    assert sampler.sample()["cpu_percent"] is None  # the previous reading was missing: nothing to compare


def test_a_platform_without_proc_or_sys_gives_nones(tmp_path):
    sampler = SystemSampler(
        tmp_path / "gone", proc_stat=tmp_path / "stat", statm=tmp_path / "statm", thermal=tmp_path / "thermal"
    )
    sample = sampler.sample()
    assert set(sample) == KEYS
    assert sample["cpu_percent"] is None
    assert sample["rss_bytes"] is None
    assert sample["temperature_c"] is None
    assert sample["disk_free_bytes"] is None  # the state directory is not there


@pytest.mark.parametrize("text", ["", "5000\n", "5000 lots 1\n"], ids=["empty", "one-field", "not-a-number"])
def test_a_bad_statm_gives_no_rss(tmp_path, text):
    statm = tmp_path / "statm"
    statm.write_text(text)
    assert rss_bytes(statm) is None


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ((("acpitz", "30000"), ("x86_pkg_temp", "55000")), 55.0),
        ((("CPU-therm", "41500"), ("GPU-therm", "39000")), 41.5),  # a Jetson's names, any case
        ((("cpu", "60000"), ("soc_thermal", "50000"), ("cpu-thermal", "45000")), 45.0),  # the preferred name wins
        ((("x86_pkg_temp", "70000"), ("cpu_thermal", "52000")), 52.0),
        ((("acpitz", "30000"), ("iwlwifi_1", "35000")), 30.0),  # no SoC zone: the first one
        ((("acpitz", "-5250"),), -5.2),
        (((None, "30000"), ("gpu", "35000")), 35.0),  # a zone without a type is passed over
    ],
)
def test_the_soc_zone_is_chosen_by_its_type(tmp_path, entries, expected):
    assert soc_temperature(zones(tmp_path / "thermal", *entries)) == expected


@pytest.mark.parametrize(
    "entries",
    [
        (),
        (("cpu-thermal", "hot"),),  # not a number
        (("cpu-thermal", ""),),
        (("cpu-thermal", None), ("acpitz", "30000")),  # the chosen zone has no reading
        ((None, "30000"),),  # no zone says what it is
    ],
)
def test_no_usable_zone_gives_no_temperature(tmp_path, entries):
    assert soc_temperature(zones(tmp_path / "thermal", *entries)) is None


def test_no_thermal_folder_gives_no_temperature(tmp_path):
    assert soc_temperature(tmp_path / "missing") is None
