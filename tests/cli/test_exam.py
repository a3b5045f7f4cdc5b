"""nextchar exam's printed tables, checks, heatmaps and JSON, and its flag errors."""
import json

import pytest
import torch
from click.testing import CliRunner

from nextchar.cli import main

# The published answer sheet's table for problem 2 (seed 12345, 100 epochs), first 3 rows.
PUBLISHED_PROBLEM_2_HEAD = [
    [0.0, 0.005, 0.0, 0.982, 0.013, 0.0, 0.0],
    [0.0, 0.999, 0.0, 0.0, 0.0, 0.001, 0.0],
    [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
]


@pytest.mark.slow
def test_cli_exam_problem_2_end_to_end(tmp_path):
    """`nextchar exam --problem 2` by the full protocol reproduces the published table, plot and JSON."""
    out, js = tmp_path / "plots", tmp_path / "exam.json"
    run = CliRunner().invoke(main, ["exam", "--problem", "2", "--out", str(out), "--json", str(js)])
    assert run.exit_code == 0, run.output
    assert "Problem 2" in run.output and "[[0.    0.005 0.    0.982 0.013 0.    0.   ]" in run.output
    assert (out / "problem2.png").stat().st_size > 1000
    data = json.loads(js.read_text())
    problem = data["problems"]["2"]
    assert problem["probs_head"][:3] == PUBLISHED_PROBLEM_2_HEAD
    assert problem["seed"] == 12345 and problem["epochs"] == 100 and problem["formulation"] == "rnn-cell"
    assert len(problem["probs_head"]) == 10 and problem["final_loss"] < 0.01


@pytest.mark.slow
def test_cli_exam_parallel_jobs_and_checks_in_json(tmp_path):
    js = tmp_path / "exam.json"
    run = CliRunner().invoke(main, ["exam", "--problem", "5", "--problem", "6", "--epochs", "3", "--jobs", "2",
                                    "--out", str(tmp_path), "--json", str(js)])
    assert run.exit_code == 0, run.output
    check = json.loads(js.read_text())["checks"]["6_vs_5"]
    assert check == {"max_abs_diff": 0.0, "tables_identical": True, "bit_equal": True, "seeds": [43052, 43052]}
    assert "the exam sets no seed" not in run.output


def test_cli_says_which_seed_it_chose_for_unseeded_problems(tmp_path):
    run = CliRunner().invoke(main, ["exam", "--problem", "4", "--epochs", "2", "--out", str(tmp_path)])
    assert run.exit_code == 0 and "the exam sets no seed; nextchar uses 0" in run.output


def test_cli_rejects_bad_problem_number(tmp_path):
    run = CliRunner().invoke(main, ["exam", "--problem", "7"])
    assert run.exit_code != 0 and "--problem" in run.output


@pytest.mark.parametrize("command", [["exam", "--problem", "4"], ["verify"], ["claims", "--quick"], ["generate", "x"]])
def test_cli_bad_device_is_a_flag_error(command):
    run = CliRunner().invoke(main, [*command, "--device", "tpu"])
    assert run.exit_code == 2 and "--device" in run.output and "got 'tpu'" in run.output
    assert "Traceback" not in run.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cli_cuda_without_cuda_is_a_clear_error():
    run = CliRunner().invoke(main, ["exam", "--problem", "4", "--device", "cuda"])
    assert run.exit_code == 2 and "CUDA is not available" in run.output


def test_unseeded_problem_with_a_given_seed_says_so(tmp_path):
    out = CliRunner().invoke(main, ["exam", "--problem", "4", "--epochs", "1", "--seed", "7", "--out", str(tmp_path)])
    assert out.exit_code == 0 and "seed 7 (given with --seed)" in out.output and "nextchar uses" not in out.output


def test_an_epoch_count_past_the_memory_limit_is_refused_before_any_work():
    """exam --engine compiled --epochs 10**9 allocated its per-epoch arrays, then died; now it is refused."""
    out = CliRunner().invoke(main, ["exam", "--problem", "3", "--engine", "compiled", "--epochs", str(10**12),
                                    "--jobs", "1"])
    assert out.exit_code == 1 and "train: 1,000,000,000,000 epochs on 999 steps needs about" in out.output
    assert "fewer epochs" in out.output and "Traceback" not in out.output


def test_exam_writes_each_problems_trained_model_as_a_checkpoint(tmp_path):
    """problemN.safetensors holds the trained model (config, the exam's vocabulary in its order, weights,
    the per-epoch losses), so predict, generate and trace take exam models like any run's."""
    from nextchar.exam.problems import run_problem
    from nextchar.inspect.trace import trace
    from nextchar.run.checkpoint import load_checkpoint
    from nextchar.sequence.data import EXAM_MAPPING

    out = CliRunner().invoke(main, ["exam", "--problem", "6", "--epochs", "3", "--jobs", "1", "--out", str(tmp_path)])
    assert out.exit_code == 0 and f"model: {tmp_path / 'problem6.safetensors'}" in out.output
    ckpt = load_checkpoint(tmp_path / "problem6.safetensors")
    alone = run_problem(6, epochs=3)
    assert ckpt.vocab.chars == tuple(EXAM_MAPPING) and ckpt.model_config == alone.model_config
    assert ckpt.model_config.cell_style == "two-linear" and ckpt.step == 3
    assert all(torch.equal(ckpt.model_state[k], v) for k, v in alone.model_state.items())
    assert ckpt.step_losses == [e["loss"] for e in alone.fit.history]
    predicted = CliRunner().invoke(main, ["predict", str(tmp_path / "problem6.safetensors"), "--text", "hi?hello!!",
                                          "--png", str(tmp_path / "p.png")])
    assert predicted.exit_code == 0, predicted.output
    inside = trace(ckpt.build_model(), ckpt.vocab, "hi?hello!!")
    assert inside.layers[0].c.shape == (10, 4) and sorted(inside.layers[0].gates) == ["f", "g", "i", "o"]
