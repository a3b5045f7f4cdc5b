import json

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.exam.verify import verify_family


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_verify_passes_and_scratch_equals_cell(family):
    report = verify_family(family, epochs=3)
    assert report.passed, report.diffs
    assert set(report.diffs) == {"cell", "scratch"}


def test_verify_fails_when_a_tolerance_is_exceeded():
    """The check can fail: with a zero tolerance the module's different kernels show."""
    report = verify_family("lstm", epochs=2)
    report.tolerances = {k: 0.0 for k in report.tolerances}
    assert not report.passed


def test_cli_verify_json(tmp_path):
    js = tmp_path / "v.json"
    run = CliRunner().invoke(main, ["verify", "--family", "gru", "--epochs", "2", "--json", str(js)])
    assert run.exit_code == 0, run.output
    data = json.loads(js.read_text())
    assert data["families"][0]["family"] == "gru" and data["families"][0]["passed"]
