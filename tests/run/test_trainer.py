"""nextchar train on the shipped fixture: it learns, writes its run folder, and never saves non-finite state."""
import json

import pytest
import torch

from nextchar.data import read_text_file, unigram_loss
from nextchar.run.checkpoint import load_checkpoint
from nextchar.run.trainer import train
from nextchar.step import NonFiniteLossError
from tests.helpers import FIXTURE, SMALL_24, train_config
from tests.helpers import train_small as _train


def test_divergence_never_saves_non_finite_weights(tmp_path, monkeypatch):
    """A step that makes the weights non-finite (its loss, taken before the step, still finite) is never
    saved: the save is refused, naming the step, and last keeps the finite state."""

    real_step, calls = torch.optim.AdamW.step, []

    def diverging_step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", diverging_step)
    with pytest.raises(NonFiniteLossError, match=r"became NaN or infinite at step 3; last.safetensors keeps step 2"):
        _train(tmp_path, max_steps=6, eval_every=1)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == 2 and all(torch.isfinite(t).all() for t in ckpt.model_state.values())
    history = json.loads((tmp_path / "history.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert len(history["step_losses"]) == 2


def test_loss_goes_down_on_the_fixture(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=60, eval_every=20), tmp_path,
                   progress=False)
    assert result.evals[-1]["val_loss"] < result.evals[0]["val_loss"] < 4.0
    text = FIXTURE.read_text()
    assert result.evals[-1]["val_loss"] < unigram_loss(result.vocab.encode(text), len(result.vocab))
    for name in ("best.safetensors", "last.safetensors", "history.json", "history.csv", "loss.png"):
        assert (tmp_path / name).is_file(), name


def test_non_finite_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    import nextchar.run.trainer as trainer

    real, calls = trainer.F.cross_entropy, []

    def poisoned(logits, target, reduction="mean"):
        loss = real(logits, target, reduction=reduction)
        if reduction == "mean":  # training steps only; validation sums
            calls.append(1)
            return loss * float("nan") if len(calls) == 6 else loss
        return loss

    monkeypatch.setattr(trainer.F, "cross_entropy", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 6; try a lower learning rate"):
        train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=20, eval_every=2), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == 4 and all(torch.isfinite(t).all() for t in ckpt.model_state.values())


def test_seq_len_longer_than_text_and_too_many_streams(tmp_path):
    with pytest.raises(ValueError, match="too few for 4 streams"):
        train("abcdefghij" * 3, SMALL_24, train_config(seq_len=64, val_fraction=0.0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="too few for 500 streams"):
        train(read_text_file(FIXTURE), SMALL_24, train_config(batch_size=500), tmp_path, progress=False)
    with pytest.raises(ValueError, match="validation text has"):
        train("abcdefghij" * 10, SMALL_24, train_config(seq_len=20, batch_size=1, val_fraction=0.1), tmp_path,
              progress=False)


@pytest.mark.parametrize("flag,value,match", [("--clip", "inf", "clip must be a finite number"),
                                              ("--lr", "inf", "lr must be a finite number")])
def test_a_non_finite_clip_or_lr_is_refused_before_any_work(tmp_path, flag, value, match):
    from tests.helpers import cli_train

    out = cli_train(flag, value, "--max-steps", "2", "--out", str(tmp_path / "run"))
    assert out.exit_code == 1 and match in out.output and not (tmp_path / "run").exists()


def test_a_best_loss_past_exp_range_prints_an_infinite_perplexity(tmp_path, monkeypatch):
    """A validation loss above ~709 ended the run with an OverflowError after saving; now it prints inf."""
    import nextchar.run.trainer as trainer
    from tests.helpers import cli_train

    monkeypatch.setattr(trainer, "evaluate", lambda *args: (800.0, 0.0))
    out = cli_train("--max-steps", "2", "--eval-every", "2", "--out", str(tmp_path / "run"))
    assert out.exit_code == 0, out.output
    assert "best val loss 800.0000 (perplexity inf)" in out.output
