"""The --report shortcut of exam, claims and sweep: the page, and nothing left behind."""
import tempfile

from click.testing import CliRunner

from nextchar.cli import main


def test_report_alone_leaves_no_temporary_json_behind(tmp_path, monkeypatch):
    """With --report but no --json the results go through a temporary JSON, removed once the page is built."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where tempfile puts what it makes
    page = tmp_path / "page.html"
    out = CliRunner().invoke(main, ["claims", "--claim", "2", "--out", str(tmp_path / "figures"), "--report",
                                    str(page)])
    assert out.exit_code == 0, out.output
    assert "Claim 2:" in page.read_text()
    assert list(scratch.iterdir()) == []
