"""Nothing a user owns is replaced without --overwrite (issue 29, item 2): each command that writes a folder
refuses one holding files it did not write, writes again into its own, and leaves no empty folder after a
failure; a file written at its default path replaces only a page nextchar wrote."""
import json
import os

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.outputs import OWNER_FILE
from tests.helpers import FIXTURE, assert_one_error, train_small


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("owned")
    train_small(root / "run", max_steps=2, eval_every=2)
    return root / "run" / "last.safetensors"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_lstmvis_refuses_a_folder_of_someone_elses_files_and_writes_into_its_own(checkpoint, tmp_path):
    pytest.importorskip("h5py")
    mine = tmp_path / "vis"
    mine.mkdir()
    (mine / "lstm.yml").write_text("my own LSTMVis project\n")
    args = ["inspect", checkpoint, "--text", "hello there", "--html", tmp_path / "p.html", "--lstmvis", mine]
    refused = _run(*args)
    assert_one_error(refused, "lstm.yml")
    assert "--overwrite" in refused.output and (mine / "lstm.yml").read_text() == "my own LSTMVis project\n"
    assert not (tmp_path / "p.html").exists()  # refused before any work
    fresh = tmp_path / "fresh"
    assert _run(*args[:-1], fresh).exit_code == 0
    again = _run(*args[:-1], fresh)  # its own folder: written again
    assert again.exit_code == 0, again.output
    assert json.loads((fresh / OWNER_FILE).read_text())["command"] == "inspect --lstmvis"
    forced = _run(*args, "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert (mine / "lstm.yml").read_text().startswith("name:")


def test_lstmvis_refuses_a_train_run_folder(checkpoint, tmp_path):
    pytest.importorskip("h5py")
    out = _run("inspect", checkpoint, "--text", "hello", "--html", tmp_path / "p.html", "--lstmvis",
               checkpoint.parent)
    assert_one_error(out, "last.safetensors")
    assert not (checkpoint.parent / "lstm.yml").exists()


def test_a_full_disk_under_lstmvis_names_the_folder_and_leaves_no_folder(checkpoint, tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py, "File", full)
    out = _run("inspect", checkpoint, "--text", "hello", "--html", tmp_path / "p.html", "--lstmvis", tmp_path / "vis")
    assert_one_error(out, f"--lstmvis {str(tmp_path / 'vis')!r}: cannot write LSTMVis's files: No space left")
    assert not (tmp_path / "vis").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_inspect_keeps_a_users_inspect_html_and_replaces_its_own(checkpoint, tmp_path):
    os.chdir(tmp_path)
    page = tmp_path / "inspect.html"
    page.write_text("<html>my notes</html>")
    refused = _run("inspect", checkpoint, "--text", "hello")
    assert_one_error(refused, "'inspect.html' exists and is not a page nextchar wrote")
    assert "--html PATH" in refused.output and page.read_text() == "<html>my notes</html>"
    assert _run("inspect", checkpoint, "--text", "hello", "--overwrite").exit_code == 0
    assert _run("inspect", checkpoint, "--text", "hello").exit_code == 0  # its own page now: replaced
    assert '<meta name="generator" content="nextchar">' in page.read_text()
    page.write_text("<html>my notes</html>")
    named = _run("inspect", checkpoint, "--text", "hello", "--html", "inspect.html")
    assert named.exit_code == 0  # a path the user names is theirs to replace


def test_report_keeps_a_users_file_at_its_default_path(checkpoint, tmp_path):
    os.chdir(tmp_path)
    (tmp_path / "nextchar-report.html").write_text("mine")
    out = _run("report", checkpoint.parent)
    assert_one_error(out, "'nextchar-report.html' exists and is not a page nextchar wrote")
    assert (tmp_path / "nextchar-report.html").read_text() == "mine"


def test_tune_refuses_a_train_run_folder_and_a_folder_of_figures_it_did_not_make(checkpoint, tmp_path):
    pytest.importorskip("optuna")
    base = ["tune", FIXTURE, "--trials", "1", "--max-steps", "2", "--eval-every", "2", "--no-progress",
            "--seq-len", "16", "--batch-size", "4", "--param", "hidden-size=choice:8"]
    assert_one_error(_run(*base, "--out", checkpoint.parent), "last.safetensors")
    assert not (checkpoint.parent / "study.db").exists()
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "history.png").write_bytes(b"my plot")
    assert_one_error(_run(*base, "--out", figures), "history.png")
    assert (figures / "history.png").read_bytes() == b"my plot"


def test_a_failure_before_any_trial_leaves_no_empty_folder(tmp_path):
    pytest.importorskip("optuna")
    out = _run("tune", FIXTURE, "--out", tmp_path / "s", "--param", "lr=log:1e-3:1e-2", "--param", "lr=log:1e-3:1e-2")
    assert_one_error(out, "given twice")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", [["exam", "--problem", "1", "--epochs", "1", "--jobs", "1"],
                                     ["claims", "--claim", "1", "--quick"],
                                     ["sweep", "--problem", "1", "--seeds", "1", "--epochs", "1", "--no-progress"]])
def test_figure_folders_refuse_someone_elses_files(tmp_path, command):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    assert_one_error(_run(*command, "--out", folder), "thesis.tex")
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


def test_a_folder_written_before_marks_is_known_by_its_file_names(tmp_path):
    from nextchar.cli.common import written_by

    exam = written_by("problem[1-6].*")
    (tmp_path / "problem1.png").write_bytes(b"")
    (tmp_path / "problem1.safetensors").write_bytes(b"")
    (tmp_path / "exam.json").write_text("{}")
    assert exam(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert not exam(tmp_path)
