"""The report page in a real browser: headless Chromium through Selenium (skipped only where it cannot run)."""
import json

import pytest

from nextchar.report import build_report
from tests.helpers import headless_chromium as _driver
from tests.helpers import page_is_self_contained

pytestmark = pytest.mark.slow  # end to end: run by CI, left out of the fast tier (-m "not slow")


def test_the_page_in_headless_chromium(inputs, tmp_path):
    page = build_report([inputs[k] for k in ("exam", "verify", "claims", "sweep", "bench", "run",
                                                                   "inspect", "tune")], tmp_path / "r.html")
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


def test_report_live_runs_the_runs_model_in_a_try_it_panel(inputs, tmp_path):
    from nextchar.generate import predict
    from nextchar.run.checkpoint import load_checkpoint

    small = build_report([inputs["run"]], tmp_path / "plain.html")
    assert "<iframe" not in small.read_text()  # off by default: the default report stays small
    page = build_report([inputs["run"]], tmp_path / "live.html", live=True)
    checkpoint = inputs["run"] / ("best.safetensors" if (inputs["run"] / "best.safetensors").exists()
                                  else "last.safetensors")
    ckpt = load_checkpoint(checkpoint)
    driver = _driver()
    try:
        driver.get(page.resolve().as_uri())
        page_is_self_contained(driver)
        driver.switch_to.frame(driver.find_element("css selector", "iframe.live"))
        got = driver.execute_script("return window.nextchar.probabilities('def ')")
        want = predict(ckpt.build_model(), ckpt.vocab, "def ")[-1].tolist()
        assert max(abs(a - b) for a, b in zip(got, want)) < 1e-5
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
