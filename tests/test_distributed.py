"""nextchar train under torchrun: 2 CPU processes (gloo) against 1 process with the same global batch."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FIXTURE

pytestmark = pytest.mark.slow  # end to end: run by CI, left out of the fast tier (-m "not slow")

ARGS = ["train", str(FIXTURE), "--hidden-size", "24", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "4",
        "--max-steps", "8", "--eval-every", "4", "--lr", "0.01", "--no-progress", "--device", "cpu", "--seed", "3"]
TOLERANCE = 1e-4
"""Relative: DDP averages the ranks' gradients, one process averages over all streams; only round-off differs."""


def _torchrun(nproc: int, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "nextchar", *ARGS, "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def _losses(out: Path) -> list[float]:
    return json.loads((out / "history.json").read_text())["step_losses"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    single, double = _torchrun(1, root / "one"), _torchrun(2, root / "two")
    assert single.returncode == 0, single.stderr[-3000:]
    assert double.returncode == 0, double.stderr[-3000:]
    return root, single, double


def test_two_processes_match_one_with_the_same_global_batch(runs):
    root, _, _ = runs
    one, two = _losses(root / "one"), _losses(root / "two")
    assert len(one) == len(two) == 8
    assert max(abs(a - b) / abs(a) for a, b in zip(one, two)) < TOLERANCE


def test_only_rank_zero_prints_and_writes_one_checkpoint(runs):
    root, _, double = runs
    assert double.stdout.count("step      4 |") == 1 and double.stdout.count("step      8 |") == 1
    assert double.stdout.count("best val loss") == 1
    assert sorted(p.name for p in (root / "two").glob("*.safetensors")) == ["best.safetensors", "last.safetensors"]


def test_distributed_resume_equals_an_uninterrupted_distributed_run(runs):
    root, _, _ = runs
    before = _losses(root / "two")
    resumed = _torchrun(2, root / "two", "--resume", "--max-steps", "12")
    whole = _torchrun(2, root / "whole", "--max-steps", "12")
    assert resumed.returncode == 0 and whole.returncode == 0, resumed.stderr[-3000:] + whole.stderr[-3000:]
    losses = _losses(root / "two")
    assert len(losses) == 12 and losses[:8] == before
    assert max(abs(a - b) / abs(a) for a, b in zip(losses, _losses(root / "whole"))) < 1e-6
    from nextchar.run.checkpoint import load_checkpoint

    ckpt = load_checkpoint(root / "two" / "last.safetensors")
    assert ckpt.step == 12 and ckpt.carry[0].shape[1] == 4  # the carried state of all 4 global streams


def test_a_time_budget_stops_every_rank_at_one_step_with_one_schedule(tmp_path):
    """Rank 0's clock decides the stop and the budget's schedule length for both ranks: were they to decide
    apart, one rank would wait in an all-reduce the other never joins (the timeout would fail the test)."""
    cut = ARGS.index("--max-steps")
    args = ARGS[:cut] + ARGS[cut + 2:]  # --max-time alone
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "nextchar",
               *args, "--max-time", "4s", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("stopped by the --max-time budget") + done.stdout.count("best val loss") >= 1
    from nextchar.run.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == ckpt.evals[-1]["step"] == len(ckpt.step_losses) > 0
