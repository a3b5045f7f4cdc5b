"""Learning-rate schedules of ``nextchar train``: a closed-form factor of the step, run by torch's ``LambdaLR``.

Each schedule is a function of the optimizer step s (0-based: the step about to be taken) alone, so the
rate at any step is the same whether or not the run was interrupted, and a resume needs no scheduler
state: ``LambdaLR(..., last_epoch=s - 1)`` lands on step s. With ``warmup_steps`` W > 0 the factor first
rises linearly, (s + 1) / W for s < W; after that (q = (s - W) / (S - W), S the schedule's length in steps):

- ``constant``: 1.
- ``cosine``: m + (1 - m) (1 + cos(pi q)) / 2, with m = min_lr / lr (reaches min_lr at step S; min_lr is
  lr / 10 unless given, as nanoGPT's).
- ``linear``: m + (1 - m) (1 - q).
- ``step``: ``lr_decay`` ** n, n the number of decay points k * E passed (k >= 1, E = ``lr_decay_every``
  epochs in steps) that are at or after ``lr_decay_after`` epochs: char-rnn's x0.97 per epoch after epoch 10
  is ``--lr-schedule step --lr-decay 0.97 --lr-decay-after 10``.

cosine and linear need S: the run's length in steps (--max-steps or --epochs), or, under --max-time
alone, the steps the budget allows, estimated from the measured speed (``time_budget.py``) after a few
steps and again at each evaluation, and saved in the checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import TrainConfig

NEEDS_LENGTH = ("cosine", "linear")
"""Schedules that decay over the run's length, so need it in steps."""


@dataclass
class Schedule:
    """A schedule's settings in steps (epochs converted with the run's steps per epoch)."""

    name: str = "constant"
    warmup_steps: int = 0
    min_ratio: float = 0.0
    """min_lr / lr: where cosine and linear end."""
    decay: float = 1.0
    decay_every: int = 1
    """Steps between step-decay points."""
    decay_after: int = 0
    """Steps before which no step-decay point counts."""
    length: int | None = None
    """The schedule's length S in steps (cosine and linear); under --max-time alone None until the budget's
    steps are estimated, a few steps in, where the factor is ~1 anyway (it is 1 until then)."""

    def factor(self, step: int) -> float:
        """The learning rate at ``step`` (0-based) as a multiple of the base rate."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.name == "step":
            first = max(1, -(-self.decay_after // self.decay_every))  # the first decay point counted
            return self.decay ** max(0, step // self.decay_every - first + 1)
        if self.name == "constant" or self.length is None:
            return 1.0
        q = min(1.0, (step - self.warmup_steps) / max(1, self.length - self.warmup_steps))
        shape = 0.5 * (1.0 + math.cos(math.pi * q)) if self.name == "cosine" else 1.0 - q
        return self.min_ratio + (1.0 - self.min_ratio) * shape


def schedule_of(config: TrainConfig, steps_per_epoch: int, length: int | None) -> Schedule:
    """The :class:`Schedule` a :class:`~nextchar.config.TrainConfig` asks for, its epochs in steps."""
    if config.lr_schedule in NEEDS_LENGTH and length is None and config.max_time is None:
        raise ValueError(f"train: the {config.lr_schedule} schedule needs the run's length: give --max-steps, "
                         "--epochs or --max-time")
    min_lr = config.lr / 10 if config.min_lr is None else config.min_lr
    return Schedule(config.lr_schedule, config.warmup_steps, min_lr / config.lr, config.lr_decay,
                    max(1, round(config.lr_decay_every * steps_per_epoch)),
                    round(config.lr_decay_after * steps_per_epoch), length)


def attach(optimizer: torch.optim.Optimizer, schedule: Schedule, lr: float, step: int
           ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over ``optimizer`` with base rate ``lr``, its next step ``step`` (a resume's): the groups'
    rate is ``lr * schedule.factor(step)`` on return, and each ``.step()`` after an optimizer step moves on."""
    for group in optimizer.param_groups:
        group["initial_lr"] = lr  # the base rate LambdaLR multiplies (a resume's --lr takes effect here)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor, last_epoch=step - 1)
