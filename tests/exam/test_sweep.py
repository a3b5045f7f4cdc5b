"""nextchar sweep: seeds, grids, the exam problems' spread, outputs."""
import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.exam.problems import run_problem
from nextchar.exam.sweep import parse_seeds, sweep


@pytest.mark.parametrize("spec,seeds", [("3", [0, 1, 2]), ("2..4", [2, 3, 4]), ("12345,0..2", [12345, 0, 1, 2]),
                                        ("5,5,1", [5, 1])])
def test_seed_specs(spec, seeds):
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize("spec", ["a", "4..2", "", "1,,x"])
def test_bad_seed_specs_are_named(spec):
    with pytest.raises(ValueError, match="--seeds must"):
        parse_seeds(spec)


@pytest.mark.parametrize("number", [2, 6])
def test_a_problems_seed_reproduces_the_exam_and_other_seeds_differ(number):
    """Seed s of --problem N is `exam --problem N --seed s`: the same table (the compiled engine equals the
    exam's autograd run to round-off); every other seed gives its own table."""
    seed = run_problem(number, epochs=25)
    result = sweep([seed.seed, 0, 1, 2], problem=number, epochs=25)
    assert result.runs[0].probs_head == seed.probs_head
    assert abs(result.runs[0].final_loss - seed.fit.final_loss) < 1e-5
    assert len({json.dumps(r.probs_head) for r in result.runs}) == 4
    spread = result.summary[0]["table_spread"]
    assert spread["reference_seed"] == seed.seed and spread["reference_table"] == seed.probs_head
    tables = np.array([r.probs_head for r in result.runs])  # (seeds, 10, V): each entry over the seeds
    for key, q in (("q05", 0.05), ("median", 0.5), ("q95", 0.95)):
        assert spread[key] == np.quantile(tables, q, axis=0).round(3).tolist(), key
    assert spread["reference_percentile"] == (tables <= tables[0]).mean(axis=0).round(3).tolist()


def test_grid_summary_and_mse():
    result = sweep(parse_seeds("3"), lrs=[0.1, 0.05], hidden_sizes=[4, 8], models=["rnn", "gru"], epochs=5)
    assert len(result.runs) == 2 * 2 * 2 * 3 and len(result.summary) == 8
    first = result.summary[0]
    assert first["seeds"] == 3 and set(first["loss_quantiles"]) == {"0.05", "0.25", "0.5", "0.75", "0.95"}
    assert result.engine == "many"
    for entry in result.summary:  # each configuration's share of seeds at 100% accuracy, and its loss quantiles
        runs = [r for r in result.runs if (r.model, r.hidden_size, r.lr) == (entry["model"], entry["hidden_size"], entry["lr"])]
        assert entry["solved_fraction"] == sum(r.accuracy == 1.0 for r in runs) / len(runs)
        assert entry["loss_quantiles"]["0.5"] == pytest.approx(float(np.median([r.final_loss for r in runs])))
    mse = sweep([0, 1], loss="mse", epochs=3)
    assert mse.engine == "stacked" and mse.runs[0].loss == "mse"


def test_stacked_engine_equals_the_many_engine_to_round_off():
    """The torch formulation (any device) and the compiled one train the same models to the same tables."""
    many = sweep([0, 1, 2], problem=5, epochs=20)
    stacked = sweep([0, 1, 2], problem=5, epochs=20, loss="cross_entropy", device="cpu")
    assert stacked.engine == "many"  # cross-entropy on the CPU: the compiled engine
    from nextchar.exam.problems import PROBLEMS, build_problem_model
    from nextchar.many import fit_many, fit_stacked
    from nextchar.vocab import exam_data

    _, x, y = exam_data()
    a = fit_many([build_problem_model(PROBLEMS[5], s) for s in range(3)], x, y, epochs=20)
    b = fit_stacked([build_problem_model(PROBLEMS[5], s) for s in range(3)], x, y, epochs=20)
    for p, q, run in zip(a, b, many.runs):
        torch.testing.assert_close(q.probs, p.probs, atol=2e-4, rtol=0)
        assert abs(p.history[-1]["loss"] - q.history[-1]["loss"]) < 1e-4 and run.probs_head == [
            [round(v, 3) for v in row] for row in p.probs[:10].tolist()]


def test_problem_fixes_the_model():
    with pytest.raises(ValueError, match="--problem fixes the model"):
        sweep([0], problem=1, hidden_sizes=[16])


def test_cli_sweep_writes_json_csv_and_plots(tmp_path):
    out = CliRunner().invoke(main, ["sweep", "--seeds", "0..3", "--lr", "0.1,0.05", "--hidden-size", "4,8",
                                    "--epochs", "4", "--json", str(tmp_path / "s.json"), "--csv",
                                    str(tmp_path / "s.csv"), "--out", str(tmp_path / "plots"), "--no-progress"])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert set(data) == {"runs", "summary", "engine", "seconds", "command"} and len(data["runs"]) == 16
    assert set(data["runs"][0]) == {"problem", "model", "family", "hidden_size", "seed", "lr", "epochs", "loss",
                                    "final_loss", "accuracy", "probs_head"}
    assert len(data["runs"][0]["probs_head"]) == 10 and len(data["runs"][0]["probs_head"][0]) == 7
    assert len(list(csv.reader((tmp_path / "s.csv").open()))) == 17
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["sweep_accuracy.png", "sweep_loss.png", "sweep_rnn_lr_hidden.png"]
    bad = CliRunner().invoke(main, ["sweep", "--lr", "fast"])
    assert bad.exit_code == 2 and "comma list of learning rates" in bad.output


def test_torchrun_splits_the_grid_and_rank_zero_writes_the_one_process_json(tmp_path):
    """2 gloo processes each train part of the grid; the JSON equals a one-process run's (seconds aside)."""
    import subprocess
    import sys

    args = ["sweep", "--seeds", "0..5", "--lr", "0.1,0.05", "--model", "rnn,gru", "--epochs", "3", "--no-progress"]
    single = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "one.json")])
    assert single.exit_code == 0, single.output
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "nextchar", *args, "--json", str(tmp_path / "two.json")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("runs, many engine") == 1  # only rank 0 reports
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    for data in (one, two):
        data.pop("seconds"), data.pop("command")  # the command names its own --json
    assert one == two
