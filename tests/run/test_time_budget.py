"""--max-time: durations, a budget that stops the run as Ctrl-C would but evaluates, saves and exits 0, the
run's seconds summed over resumes, and a schedule laid over the steps a budget holds. No verdict here
depends on the machine's speed: budgets are either generous or far too small for the work asked."""
import math

import pytest

from nextchar.run.checkpoint import load_checkpoint
from nextchar.run.folder import read_history
from nextchar.run.time_budget import format_seconds, parse_duration
from tests.helpers import cli_train, train_small


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("1.5m", 90), ("2h", 7200), (" .5s", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "5d", "inf", "nan", "1e3", "m"])
def test_bad_durations_are_refused_naming_the_value(text):
    with pytest.raises(ValueError, match="--max-time must be a duration"):
        parse_duration(text)


def test_seconds_are_shown_as_people_read_them():
    assert [format_seconds(s) for s in (4.25, 75.3, 3725)] == ["4.2s", "1m15s", "1h02m05s"]


def test_history_gains_seconds_and_bits_per_character(tmp_path):
    result = train_small(tmp_path, max_steps=8, eval_every=4)
    evals = read_history(tmp_path)["evals"]
    assert evals == result.evals and len(evals) == 2
    for record in evals:
        assert record["val_bpc"] == pytest.approx(record["val_loss"] / math.log(2), rel=1e-12)
    assert 0 < evals[0]["seconds"] < evals[1]["seconds"]


@pytest.mark.slow
def test_the_budget_stops_evaluates_saves_exits_0_and_a_resume_continues_the_clock(tmp_path):
    out = cli_train("--max-time", "1.5s", "--epochs", "100000", "--eval-every", "100000", "--out", str(tmp_path))
    assert out.exit_code == 0, out.output
    assert "stopped by the --max-time budget" in out.output and "val loss" in out.output
    first = load_checkpoint(tmp_path / "last.safetensors")
    assert first.step > 0 and [e["step"] for e in first.evals] == [first.step]  # evaluated where it stopped
    assert first.seconds >= first.evals[-1]["seconds"] > 0
    again = cli_train("--max-time", "3s", "--out", str(tmp_path), "--resume")
    assert again.exit_code == 0, again.output
    second = load_checkpoint(tmp_path / "last.safetensors")
    assert second.step > first.step and second.evals[:1] == first.evals
    assert second.evals[-1]["seconds"] > first.seconds  # the clock runs on from the first run's
    spent = cli_train("--max-time", "0.001s", "--out", str(tmp_path), "--resume")
    assert spent.exit_code == 1 and "has run" in spent.output and "ask for more" in spent.output
    assert load_checkpoint(tmp_path / "last.safetensors").step == second.step


@pytest.mark.slow
def test_max_time_alone_lays_a_cosine_schedule_over_the_steps_it_holds(tmp_path):
    result = train_small(tmp_path, max_steps=None, max_time=4.0, lr_schedule="cosine", eval_every=5)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.schedule_steps is not None and ckpt.schedule_steps >= 11  # estimated after the calibration steps
    assert ckpt.step <= ckpt.schedule_steps
    assert result.evals[-1]["lr"] < result.evals[0]["lr"] <= 0.01


def test_a_budget_smaller_than_one_step_still_trains_one_and_saves_it(tmp_path):
    result = train_small(tmp_path, max_steps=None, max_time=1e-6, eval_every=1000)
    assert result.stopped_by_budget and len(result.step_losses) == 1
    assert load_checkpoint(tmp_path / "last.safetensors").step == 1
