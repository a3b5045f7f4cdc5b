"""The report page in a real browser: headless Chromium through Selenium (skipped only where it cannot run)."""
import json
import shutil

import pytest

from nextchar.report import build_report

from .test_report import inputs  # noqa: F401  (the fixture)


def _driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Chromium or chromedriver is not installed (.ci/run installs Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_the_page_in_headless_chromium(inputs, tmp_path):  # noqa: F811
    page = build_report([inputs[k] for k in ("exam", "verify", "claims", "sweep", "bench", "run")], tmp_path / "r.html")
    driver = _driver()
    try:
        driver.get(page.resolve().as_uri())
        images = driver.find_elements("tag name", "img")
        assert images and all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                              for i in images)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert [r for r in requests if not r.startswith("data:")] == []  # the page fetched nothing
        exam = json.loads(inputs["exam"].read_text())
        for number, problem in exam["problems"].items():
            table = driver.find_element("css selector", f'table.exam-table[data-problem="{number}"]')
            cells = [[td.text for td in tr.find_elements("tag name", "td")]
                     for tr in table.find_elements("css selector", "tbody tr")]
            assert cells == [[f"{v:.3f}" for v in row] for row in problem["probs_head"]]
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()
