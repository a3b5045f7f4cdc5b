"""nextchar sweep: seeds, grids, the exam problems' spread, outputs."""
import csv
import json
import re
from dataclasses import asdict

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
    assert list(parse_seeds(spec)) == seeds


@pytest.mark.parametrize("spec", ["a", "4..2", "", "1,,x"])
def test_bad_seed_specs_are_named(spec):
    with pytest.raises(ValueError, match="--seeds must"):
        parse_seeds(spec)


@pytest.mark.slow
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
        runs = [r for r in result.runs if (r.model, r.hidden_size, r.lr) == (entry["model"], entry["hidden_size"],
                                                                             entry["lr"])]
        assert entry["solved_fraction"] == sum(r.accuracy == 1.0 for r in runs) / len(runs)
        assert entry["loss_quantiles"]["0.5"] == pytest.approx(float(np.median([r.final_loss for r in runs])))
    mse = sweep([0, 1], loss="mse", epochs=3)
    assert mse.engine == "stacked" and mse.runs[0].loss == "mse"


@pytest.mark.slow
def test_stacked_engine_equals_the_many_engine_to_round_off():
    """The torch formulation (any device) and the compiled one train the same models to the same tables."""
    many = sweep([0, 1, 2], problem=5, epochs=20)
    stacked = sweep([0, 1, 2], problem=5, epochs=20, loss="cross_entropy", device="cpu")
    assert stacked.engine == "many"  # cross-entropy on the CPU: the compiled engine
    from nextchar.exam.problems import PROBLEMS, build_problem_model
    from nextchar.sequence.data import exam_data
    from nextchar.sequence.many import fit_many, fit_stacked

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
    assert set(data) == {"runs", "summary", "engine", "seconds", "command", "interrupted"} and len(data["runs"]) == 16
    assert set(data["runs"][0]) == {"problem", "model", "family", "hidden_size", "seed", "lr", "epochs", "loss",
                                    "final_loss", "accuracy", "probs_head", "diverged_at_epoch"}
    assert len(data["runs"][0]["probs_head"]) == 10 and len(data["runs"][0]["probs_head"][0]) == 7
    assert len(list(csv.reader((tmp_path / "s.csv").open()))) == 17
    names = sorted(p.name for p in (tmp_path / "plots").iterdir() if not p.name.startswith("."))  # less its mark
    assert names == ["sweep_accuracy.png", "sweep_loss.png", "sweep_rnn_lr_hidden.png"]
    bad = CliRunner().invoke(main, ["sweep", "--lr", "fast"])
    assert bad.exit_code == 2 and "comma list of learning rates" in bad.output


@pytest.mark.slow
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


def test_a_sweep_past_the_memory_limit_is_refused_before_any_work_with_the_numbers(monkeypatch):
    """--seeds 100000000 reached 5 GB, then a MemoryError traceback; now the need is computed first."""
    monkeypatch.setenv("NEXTCHAR_MEMORY_GB", "1")
    out = CliRunner().invoke(main, ["sweep", "--seeds", "1000000", "--no-progress"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "sweep: 1,000,000 runs of 100 epochs" in out.output and "more than the 1.0 GiB" in out.output
    assert "fewer --seeds" in out.output and len(out.output.strip().splitlines()) == 1
    huge = CliRunner().invoke(main, ["sweep", "--seeds", str(2**64 - 1), "--no-progress"])  # never materialised
    assert huge.exit_code == 1 and "18,446,744,073,709,551,615 runs" in huge.output


@pytest.mark.parametrize("spec,match", [(str(2**64 + 1), r"seeds in 0\.\.2\*\*64-1"), ("0", "gives no seeds")])
def test_out_of_range_and_empty_seed_specs_are_one_line_errors(spec, match):
    out = CliRunner().invoke(main, ["sweep", "--seeds", spec, "--no-progress"])
    assert out.exit_code == 1 and re.search(match, out.output) and "Traceback" not in out.output


@pytest.mark.slow
def test_a_sweep_that_does_not_fit_in_one_chunk_runs_in_smaller_chunks_with_the_same_results(monkeypatch):
    """Past the memory limit the sweep trains fewer models per call, on the per-model kernel where a whole
    block of SIMD lanes would not fit: the results are the same, bit for bit."""
    import nextchar.fused.compiled as host

    whole = sweep(parse_seeds("8"), epochs=5)
    monkeypatch.setenv("NEXTCHAR_MEMORY_GB", "0.001")  # about one exam model at a time, no block of 32 lanes
    real, widths = host.lane_width, []
    monkeypatch.setattr(host, "lane_width", lambda *args: widths.append(real(*args)) or widths[-1])
    chunked = sweep(parse_seeds("8"), epochs=5)
    assert [asdict(r) for r in chunked.runs] == [asdict(r) for r in whole.runs]
    assert len(widths) > 1 and set(widths) == {1}  # several calls, each a block per model


def test_a_diverging_configuration_is_recorded_and_the_rest_of_the_sweep_is_kept(tmp_path):
    """A diverging --lr used to cost the whole grid, written nowhere; now each of its runs is recorded as
    failed and the rest is kept. (--lr inf itself is a flag error: JSON cannot hold it.)"""
    out = CliRunner().invoke(main, ["sweep", "--seeds", "4", "--lr", "0.1,1e38", "--epochs", "5", "--json",
                                    str(tmp_path / "s.json"), "--no-progress"])
    assert out.exit_code == 0, out.output
    runs = json.loads((tmp_path / "s.json").read_text())["runs"]
    failed = [r for r in runs if r["lr"] == 1e38]
    assert len(failed) == 4 and all(r["final_loss"] is None and r["diverged_at_epoch"] == 2 for r in failed)
    kept = [r for r in runs if r["lr"] == 0.1]
    alone = sweep(parse_seeds("4"), lrs=[0.1], epochs=5).runs
    assert [r["final_loss"] for r in kept] == [r.final_loss for r in alone]
    assert "4 diverged" in out.output and "first seed 0 at epoch 2" in out.output and "--lr" in out.output
    assert "--clip" not in out.output


def test_a_loss_that_stays_finite_but_explodes_is_diverged_and_a_huge_lr_warns_of_nothing(tmp_path):
    """--lr 1e30 ended near a loss of 1e30, summarized as a finished run; --lr 1e39 (past float32) made numpy
    print an overflow warning (issue 29, item 12)."""
    import warnings

    result = sweep(parse_seeds("2"), lrs=[1e30, 0.1], epochs=5, problem=1)
    exploded = [r for r in result.runs if r.lr == 1e30]
    assert all(r.final_loss is None and r.diverged_at_epoch == 2 for r in exploded)
    assert all(r.final_loss is not None and r.final_loss < 3 for r in result.runs if r.lr == 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = sweep(parse_seeds("2"), lrs=[1e39], epochs=5, problem=1)
    assert all(r.diverged_at_epoch is not None for r in huge.runs)


def test_ctrl_c_writes_the_runs_that_finished_and_exits_130(tmp_path, monkeypatch):
    import nextchar.exam.sweep as sweep_module

    real, calls = sweep_module._train, []

    def interrupted_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "_train", interrupted_second_chunk)
    out = CliRunner().invoke(main, ["sweep", "--seeds", "4", "--lr", "0.1,0.05", "--epochs", "3", "--json",
                                    str(tmp_path / "s.json"), "--no-progress"])
    assert out.exit_code == 130, out.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["interrupted"] is True and len(data["runs"]) == 4 and {r["lr"] for r in data["runs"]} == {0.1}


def test_a_learning_rate_that_is_not_a_finite_positive_number_is_a_flag_error():
    for value in ("inf", "nan", "-0.1", "0"):
        out = CliRunner().invoke(main, ["sweep", "--lr", f"0.1,{value}", "--no-progress"])
        assert out.exit_code == 2 and "finite and > 0" in out.output, value
