"""The dashboard page in headless Chromium (Debian's, driven by Selenium): device rows, charts, rollout, a screenshot.

Debian's ``chromium`` and ``chromium-driver`` come from ``bash tools/dev.sh test``; without them this test fails
rather than skips. The screenshot is kept in ``out/test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.edgekit.fleet.conftest import DEVICES, STATUS

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[3] / "out" / "test-artifacts"


@pytest.fixture
def browser(monkeypatch):
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        pytest.fail(f"no {CHROMIUM} or {CHROMEDRIVER}: apt-get install chromium chromium-driver (tools/dev.sh does)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers on the internet
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def path_lengths(browser, metric):
    """For each device: the length of its ``metric`` chart's line."""
    found = {}
    for chart in browser.find_elements(By.CSS_SELECTOR, f".device-charts svg.chart[data-metric='{metric}']"):
        device = chart.find_element(By.XPATH, "ancestor::div[@class='device-charts']").get_attribute("data-device")
        paths = chart.find_elements(By.CSS_SELECTOR, "path.line")
        found[device] = len(paths[0].get_attribute("d")) if paths else 0
    return found


def test_the_page_shows_devices_charts_and_the_rollout(dashboard, browser):
    browser.get(dashboard.url)
    wait = WebDriverWait(browser, 15)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "svg.chart path.line")) == 2 * len(DEVICES))

    rows = browser.find_elements(By.CSS_SELECTOR, "#devices tbody tr[data-device]")
    assert [r.get_attribute("data-device") for r in rows] == list(DEVICES)
    assert {r.get_attribute("data-device"): r.get_attribute("data-status") for r in rows} == STATUS
    assert [r.find_element(By.CSS_SELECTOR, ".status").text for r in rows] == list(STATUS.values())
    drifting = [r.get_attribute("data-device") for r in rows if "drift" in r.get_attribute("class").split()]
    assert drifting == ["pi-2"]
    assert "4 min ago" in rows[2].text

    for metric in ("p99", "throughput"):
        lengths = path_lengths(browser, metric)
        assert set(lengths) == set(DEVICES)
        assert all(length > 500 for length in lengths.values()), lengths  # 90 points: "L123.4,56.7" each
    line = browser.find_element(By.CSS_SELECTOR, ".device-charts[data-device='pi-1'] path.line").get_attribute("d")
    assert re.fullmatch(r"M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){89}", line)
    bands = browser.find_elements(By.CSS_SELECTOR, ".device-charts[data-device='pi-2'] rect.drift-band")
    assert len(bands) == 2  # its last 20 windows drifted: one band on each chart
    assert float(bands[0].get_attribute("width")) > 50

    rollout = browser.find_element(By.CSS_SELECTOR, ".rollout[data-id='deploy-7']")
    assert "2 of 3 finished" in rollout.text
    steps = rollout.find_elements(By.CSS_SELECTOR, "li.step")
    assert [(s.get_attribute("data-device"), s.get_attribute("data-status")) for s in steps] == [
        ("pi-1", "committed"),
        ("pi-2", "watching"),
        ("pi-3", "refused"),
    ]

    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources
    assert all(name.startswith(dashboard.url) for name in resources)  # nothing from the internet
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert "cannot update" not in browser.find_element(By.ID, "updated").text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
