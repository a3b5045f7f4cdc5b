"""--resume is truthful and exact: what must match is checked, and a resumed run equals one never stopped."""
import random
import subprocess
import sys

import pytest
import torch

from nextchar.data import batchify, read_text_file, split_text
from nextchar.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nextchar.run.folder import read_history
from nextchar.run.resume import ResumeMismatchError
from nextchar.run.trainer import KILL_AT_STEP, train
from nextchar.vocab import Vocab
from tests.helpers import FIXTURE, FLAGS, SMALL_24, train_config
from tests.helpers import cli_train as _cli
from tests.helpers import train_small as _train


def test_resume_lists_every_mismatch_and_applies_safe_changes(tmp_path):
    """--resume lists every flag that must match and does not; the flags that may change take effect."""
    constant = ["--lr-schedule", "constant", "--warmup-steps", "0"]  # so the groups' rate is --lr itself
    assert _cli("--max-steps", "4", "--eval-every", "4", "--out", str(tmp_path), *constant).exit_code == 0
    out = _cli("--out", str(tmp_path), "--resume", "--hidden-size", "32", "--optimizer", "sgd", "--batch-size", "8",
               "--model", "gru", "--seq-len", "8")
    assert out.exit_code == 1 and "Traceback" not in out.output
    for line in ("--hidden-size: checkpoint 16, given 32", "--optimizer: checkpoint adamw, given sgd",
                 "--batch-size: checkpoint 4, given 8", "--model: checkpoint lstm, given gru",
                 "--seq-len: checkpoint 16, given 8"):
        assert line in out.output, line
    changed = _cli("--out", str(tmp_path), "--resume", "--max-steps", "6", "--eval-every", "2", "--lr", "0.5")
    assert changed.exit_code == 0, changed.output
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == 6 and ckpt.train_config["lr"] == 0.5
    assert [g["lr"] for g in ckpt.optimizer["param_groups"]] == [0.5]  # what ran is what is recorded


def test_resume_with_another_text_is_refused(tmp_path):
    _train(tmp_path, max_steps=4)
    text = FIXTURE.read_text()
    with pytest.raises(ResumeMismatchError, match="the text: checkpoint trained on"):
        train(text[:-100], None, None, tmp_path, resume=True, progress=False)
    with pytest.raises(ResumeMismatchError, match="--val-fraction: checkpoint 0.1, given 0.2"):
        train(text, None, {"val_fraction": 0.2}, tmp_path, resume=True, progress=False)


def test_a_checkpoint_written_before_histories_were_kept_resumes_from_history_json(tmp_path):
    """Old run folders stay resumable: the history comes from history.json, cut to the checkpoint's step."""
    whole = _train(tmp_path / "whole", max_steps=8)
    _train(tmp_path / "old", max_steps=4)
    for name in ("last.safetensors", "best.safetensors"):
        ckpt = load_checkpoint(tmp_path / "old" / name)
        ckpt.step_losses, ckpt.evals = None, []  # as an older nextchar wrote it
        save_checkpoint(tmp_path / "old" / name, ckpt)
    assert load_checkpoint(tmp_path / "old" / "last.safetensors").step_losses is None
    resumed = _train(tmp_path / "old", max_steps=8, resume=True)
    assert resumed.step_losses == whole.step_losses


@pytest.mark.slow
def test_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path):
    """Fault injection: the trainer SIGKILLs itself at 4 seeded steps (mid-run, between checkpoints) and is
    resumed each time; each time last.safetensors holds the last checkpoint before the kill, with exactly
    that many step losses, and the final losses equal an uninterrupted run's bit for bit."""
    import os
    import signal

    total, every = 60, 5
    kills = sorted(random.Random(0).sample([s for s in range(6, total) if s % every], 4))
    args = [*FLAGS, "--max-steps", str(total), "--eval-every", str(every), "--model", "gru"]
    base = [sys.executable, "-m", "nextchar", "train", str(FIXTURE), *args]
    subprocess.run(base + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600)
    whole = load_checkpoint(tmp_path / "whole" / "last.safetensors").step_losses
    run = tmp_path / "killed"
    for kill in kills:
        resume = ["--resume"] if (run / "last.safetensors").exists() else []
        done = subprocess.run(base + ["--out", str(run), *resume], env={**os.environ, KILL_AT_STEP: str(kill)},
                              capture_output=True, timeout=600)
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
        ckpt = load_checkpoint(run / "last.safetensors")
        assert ckpt.step == kill - kill % every, (kill, ckpt.step)  # the work since that checkpoint was lost
        assert len(ckpt.step_losses) == ckpt.step and len(ckpt.evals) == ckpt.step // every
    subprocess.run(base + ["--out", str(run), "--resume"], check=True, capture_output=True, timeout=600)
    final = load_checkpoint(run / "last.safetensors")
    assert final.step == total and final.step_losses == whole
    assert read_history(run)["step_losses"] == whole
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("model", [SMALL_24, {**SMALL_24, "kind": "scratch", "family": "gru", "num_layers": 2,
                                              "dropout": 0.2}])
def test_resume_equals_uninterrupted(tmp_path, model):
    """Stop at step 7, resume to 14: the same per-step losses, bit for bit, as one run of 14 steps
    (crossing an epoch boundary, with dropout, so RNG state and carried hidden state must be restored)."""
    text = read_text_file(FIXTURE)[:700]
    whole = train(text, model, train_config(max_steps=14), tmp_path / "whole", progress=False)
    train(text, model, train_config(max_steps=7), tmp_path / "split", progress=False)
    resumed = train(text, model, train_config(max_steps=14), tmp_path / "split", resume=True, progress=False)
    assert resumed.step_losses == whole.step_losses
    resumed_vals = {e["step"]: e["val_loss"] for e in resumed.evals}
    assert all(resumed_vals[e["step"]] == e["val_loss"] for e in whole.evals)
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_epoch_boundary_is_crossed_in_resume_test():
    text = read_text_file(FIXTURE)[:700]
    train_text, _ = split_text(text, 0.1)
    streams = batchify(Vocab.from_text(text).encode(train_text), 4, 16)
    assert -(-(streams.shape[0] - 1) // 16) < 14  # fewer windows per epoch than the 14 steps run


def test_resume_with_text_outside_the_vocabulary_is_refused(tmp_path):
    train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=2), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="lacks characters"):
        train(read_text_file(FIXTURE) + "QQQ☃", SMALL_24, train_config(max_steps=4), tmp_path, resume=True,
              progress=False)


@pytest.mark.slow
def test_a_kill_between_best_and_last_never_loses_the_best_model(tmp_path):
    """best.safetensors is written before last.safetensors: a kill between them leaves the new best saved
    (last one evaluation behind), and resuming from last reaches the same best again."""
    import os
    import signal

    args = [*FLAGS, "--max-steps", "12", "--eval-every", "4"]
    base = [sys.executable, "-m", "nextchar", "train", str(FIXTURE), *args]
    subprocess.run(base + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600)
    run = tmp_path / "killed"
    done = subprocess.run(base + ["--out", str(run)], env={**os.environ, KILL_AT_STEP: "8:after-best"},
                          capture_output=True, timeout=600)
    assert done.returncode == -signal.SIGKILL
    best, last = load_checkpoint(run / "best.safetensors"), load_checkpoint(run / "last.safetensors")
    assert (best.step, last.step) == (8, 4) and best.best_val_loss < last.best_val_loss
    subprocess.run(base + ["--out", str(run), "--resume"], check=True, capture_output=True, timeout=600)
    whole = load_checkpoint(tmp_path / "whole" / "best.safetensors")
    resumed = load_checkpoint(run / "best.safetensors")
    assert (resumed.step, resumed.best_val_loss) == (whole.step, whole.best_val_loss)


def test_history_json_is_rebuilt_when_a_run_resumes(tmp_path):
    _train(tmp_path, max_steps=8, eval_every=4)
    history = (tmp_path / "history.json").read_text()
    (tmp_path / "history.json").write_text(history.replace('"step": 8', '"step": 4', 1)[:len(history) // 2])
    _train(tmp_path, max_steps=12, eval_every=4, resume=True)
    assert len(read_history(tmp_path)["step_losses"]) == 12


def test_resume_with_max_steps_at_or_below_the_checkpoint_is_refused(tmp_path):
    _train(tmp_path, max_steps=8, eval_every=4)
    out = _cli("--max-steps", "5", "--out", str(tmp_path), "--resume")
    assert out.exit_code == 1 and "is at step 8 already" in out.output and "ask for more" in out.output
