"""Learning-rate schedules: each value at chosen steps against its formula, what torch's optimizer runs with,
char-rnn's step decay, and a resume across the warmup and across the decay equal to a run never stopped."""
import math

import pytest
import torch

from nextchar.config import TrainConfig
from nextchar.run.checkpoint import load_checkpoint
from nextchar.run.schedule import Schedule, attach, schedule_of
from nextchar.run.trainer import train
from tests.helpers import FIXTURE, SMALL, cli_train, train_config


def test_warmup_then_cosine_and_linear_follow_their_formulas():
    lr, low, warm, length = 0.01, 0.001, 10, 110
    cosine = schedule_of(TrainConfig(lr=lr, min_lr=low, warmup_steps=warm, lr_schedule="cosine"), 50, length)
    linear = schedule_of(TrainConfig(lr=lr, min_lr=low, warmup_steps=warm, lr_schedule="linear"), 50, length)
    for step in (0, 4, 9):
        assert cosine.factor(step) == linear.factor(step) == (step + 1) / warm
    for step in (10, 35, 60, 85, 109, 110, 500):
        q = min(1.0, (step - warm) / (length - warm))
        want = low + (lr - low) * 0.5 * (1 + math.cos(math.pi * q))
        assert lr * cosine.factor(step) == pytest.approx(want, rel=1e-12)
        assert lr * linear.factor(step) == pytest.approx(low + (lr - low) * (1 - q), rel=1e-12)
    assert lr * cosine.factor(110) == pytest.approx(low) and cosine.factor(10) == 1.0


def test_char_rnns_decay_is_x097_per_epoch_after_epoch_10():
    per_epoch = 40
    char_rnn = TrainConfig(lr_schedule="step", lr_decay=0.97, lr_decay_after=10, warmup_steps=0)
    step = schedule_of(char_rnn, per_epoch, None)
    assert step.factor(0) == step.factor(10 * per_epoch - 1) == 1.0  # epochs 0..9 at the full rate
    assert step.factor(10 * per_epoch) == pytest.approx(0.97)  # char-rnn decays at the end of epoch 10
    assert step.factor(13 * per_epoch + 5) == pytest.approx(0.97 ** 4)
    halves = TrainConfig(lr_schedule="step", lr_decay=0.5, lr_decay_every=0.5, warmup_steps=0)
    every_half = schedule_of(halves, per_epoch, None)
    assert [every_half.factor(s) for s in (0, 19, 20, 39, 40, 100)] == [1, 1, 0.5, 0.5, 0.25, 0.03125]


def test_a_decaying_schedule_without_a_length_is_refused():
    with pytest.raises(ValueError, match="needs the run's length"):
        schedule_of(TrainConfig(lr_schedule="cosine"), 10, None)
    assert schedule_of(TrainConfig(lr_schedule="cosine", max_time=60), 10, None).length is None


def test_the_optimizer_runs_each_step_at_the_schedules_rate_also_when_attached_mid_run():
    schedule = Schedule("cosine", warmup_steps=3, min_ratio=0.1, length=20)
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    scheduler = attach(optimizer, schedule, 0.5, 0)
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == [0.5 * schedule.factor(s) for s in range(20)]
    late = torch.optim.SGD([weight], lr=123.0)  # a resume: its groups hold whatever the checkpoint had
    attach(late, schedule, 0.5, 7)
    assert late.param_groups[0]["lr"] == seen[7]


def _stopping_at(step):
    def on_eval(record):
        if record["step"] == step:
            raise KeyboardInterrupt  # stands for any stop after a saved evaluation
    return on_eval


@pytest.mark.parametrize("stop_at", [2, 10])  # inside the warmup (6 steps), inside the cosine decay
def test_a_resume_across_warmup_and_decay_equals_a_run_never_stopped(tmp_path, stop_at):
    config = train_config(max_steps=16, eval_every=2, lr_schedule="cosine", warmup_steps=6, min_lr=1e-4,
                          weight_decay=0.05)
    text = FIXTURE.read_text()
    whole = train(text, SMALL, config, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(text, SMALL, config, tmp_path / "stopped", progress=False, on_eval=_stopping_at(stop_at))
    assert load_checkpoint(tmp_path / "stopped" / "last.safetensors").step == stop_at
    resumed = train(text, None, None, tmp_path / "stopped", resume=True, progress=False)
    assert resumed.step_losses == whole.step_losses  # bit for bit
    assert [e["lr"] for e in resumed.evals] == [e["lr"] for e in whole.evals]
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert [e["lr"] for e in whole.evals] == [0.01 * config_factor(config, s - 1) for s in range(2, 17, 2)]


def config_factor(config: TrainConfig, step: int) -> float:
    return schedule_of(config, 1, config.max_steps).factor(step)


def test_weight_decay_reaches_the_optimizer_and_a_resume_may_change_it(tmp_path):
    out = cli_train("--max-steps", "4", "--eval-every", "4", "--weight-decay", "0.2", "--out", str(tmp_path))
    assert out.exit_code == 0, out.output
    groups = load_checkpoint(tmp_path / "last.safetensors").optimizer["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.2]
    out = cli_train("--max-steps", "6", "--eval-every", "2", "--weight-decay", "0", "--out", str(tmp_path), "--resume")
    assert out.exit_code == 0, out.output
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert [g["weight_decay"] for g in ckpt.optimizer["param_groups"]] == [0.0]
    assert ckpt.train_config["weight_decay"] == 0


def test_schedule_flags_are_checked_before_any_work(tmp_path):
    out = cli_train("--lr-schedule", "cosine", "--lr", "0.01", "--min-lr", "0.1", "--out", str(tmp_path / "r"))
    assert out.exit_code == 1 and "min_lr must be in [0, lr = 0.01], got 0.1" in out.output
    assert not (tmp_path / "r").exists()
    out = cli_train("--lr-schedule", "wavy", "--out", str(tmp_path / "r"))
    assert out.exit_code == 2 and "wavy" in out.output
