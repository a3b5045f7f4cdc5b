"""The report page in a real browser: headless Chromium through Selenium (skipped only where it cannot run)."""
import json

from nextchar.report import build_report
from tests.helpers import headless_chromium as _driver
from tests.helpers import page_is_self_contained

from .test_report import inputs  # noqa: F401  (the fixture)


def test_the_page_in_headless_chromium(inputs, tmp_path):  # noqa: F811
    page = build_report([inputs[k] for k in ("exam", "verify", "claims", "sweep", "bench", "run",
                                                                   "inspect")], tmp_path / "r.html")
    driver = _driver()
    try:
        driver.get(page.resolve().as_uri())
        page_is_self_contained(driver)
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
