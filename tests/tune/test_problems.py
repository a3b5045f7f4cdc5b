"""Exam-size studies (tune --problem N): batches of trials, each batch one call of the many engine; a trial's
loss is its model's, trained alone, bit for bit; a diverging one fails with its reason."""
import json

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from tests.helpers import assert_one_error

pytest.importorskip("optuna")


def test_an_exam_study_trains_its_trials_in_batches_each_equal_to_training_it_alone(tmp_path):
    from nextchar.exam.problems import PROBLEMS, build_problem_model
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.many import fit_many

    out = CliRunner().invoke(main, ["tune", "--problem", "2", "--trials", "12", "--epochs", "10", "--batch", "5",
                                    "--out", str(tmp_path / "s"), "--no-progress", "--json", str(tmp_path / "t.json")])
    assert out.exit_code == 0, out.output
    doc = json.loads((tmp_path / "t.json").read_text())
    trials = doc["trials"]
    assert doc["metric"] == "final_loss" and doc["study"] == "nextchar-problem2"
    assert len(trials) == 12 and sorted(t["number"] for t in trials) == list(range(12))
    assert all(t["state"] == "COMPLETE" and t["steps"] == 10 for t in trials)
    _, x, y = exam_data()
    chosen = trials[7]
    model = build_problem_model(PROBLEMS[2], int(chosen["params"]["seed"]))
    alone = fit_many([model], x, y, epochs=10, lrs=[float(chosen["params"]["lr"])])[0]
    assert alone.final_loss == chosen["value"]
    assert doc["best"]["command"].startswith("nextchar sweep --problem 2 --seeds ")


def test_an_exam_study_records_divergence_and_refuses_what_the_protocol_fixes(tmp_path):
    out = CliRunner().invoke(main, ["tune", "--problem", "2", "--trials", "3", "--epochs", "5", "--out",
                                    str(tmp_path / "s"), "--param", "lr=choice:1e38", "--no-progress", "--json",
                                    str(tmp_path / "t.json")])
    assert out.exit_code == 0, out.output
    trials = json.loads((tmp_path / "t.json").read_text())["trials"]
    assert len(trials) == 3
    assert all(t["state"] == "FAIL" and "NaN, infinite or over 100x" in t["message"] for t in trials)
    for args, message in ((["--param", "hidden-size=int:4:8"], "the exam's protocol fixes"),
                          (["--seq-len", "16"], "drop TEXT_FILE, --corpus and train's flags")):
        bad = CliRunner().invoke(main, ["tune", "--problem", "2", "--out", str(tmp_path / "b"), *args])
        assert_one_error(bad, message)
