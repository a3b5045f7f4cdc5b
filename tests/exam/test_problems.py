"""The exam's protocol: the hand-written cells give exactly the built-in cells' fitted values."""

import pytest
import torch

from nextchar.exam.problems import PROBLEMS, build_problem_model, run_exam, run_problem


@pytest.mark.parametrize("mine,theirs", [(3, 2), (6, 5)])
def test_hand_written_problem_is_bit_equal_to_builtin_problem(mine, theirs):
    """Problems 3 = 2 and 6 = 5 on the CPU, bit for bit (a short run; the full one is the CLI test)."""
    exam = run_exam([mine, theirs], epochs=8)
    assert torch.equal(exam.results[mine].fit.probs, exam.results[theirs].fit.probs)
    assert exam.checks()[f"{mine}_vs_{theirs}"]["max_abs_diff"] == 0.0


def test_published_seed_variant_of_problem_3_differs():
    """--seed 43052 reruns the answer sheet's variant of problem 3, which is not problem 2."""
    exam = run_exam([2, 3], seeds={3: 43052}, epochs=3)
    assert exam.checks()["3_vs_2"]["max_abs_diff"] > 1e-3


def test_problem_models_follow_the_exam_construction():
    p3 = build_problem_model(PROBLEMS[3], 12345)
    assert p3.config.formulation == "rnn-scratch" and hasattr(p3.core.cells[0], "i2h")
    torch.manual_seed(12345)
    cell, head = torch.nn.RNNCell(7, 8), torch.nn.Linear(8, 7)
    assert torch.equal(p3.core.cells[0].i2h.weight, cell.weight_ih)
    assert torch.equal(p3.core.cells[0].h2h.bias, cell.bias_hh)
    assert torch.equal(p3.head.weight, head.weight)


def test_fitted_values_come_from_the_last_forward_pass():
    result = run_problem(4, epochs=2)
    assert result.fit.probs.shape == (999, 7)
    torch.testing.assert_close(result.fit.probs.sum(1), torch.ones(999))
    assert len(result.fit.history) == 2


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_exam_reports_every_epoch_as_progress(jobs):
    """exam --epochs 10**7 used to show nothing for days; each epoch of each problem is reported now, from
    parallel processes too (a shared counter)."""
    counted = []
    run_exam([2, 4], epochs=3, jobs=jobs, progress=counted.append)
    assert sum(counted) == 6
