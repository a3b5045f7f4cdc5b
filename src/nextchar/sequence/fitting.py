"""fit(): the exam's training protocol on one whole sequence: each epoch one forward pass, loss,
backward and optimizer step (:func:`step.train_step`), the fitted values taken from the last epoch."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch import Tensor

from ..budget import check_memory
from ..cells import GATES
from ..device import resolve_device
from ..engines import COMPILED
from ..step import (
    accuracy,
    check_optimizer,
    loss_fn,
    make_optimizer,
    param_count,
    train_step,
)
from . import protocol as exam

HISTORY_BYTES_PER_EPOCH = 400
"""One epoch's record in the history (a dict of three numbers) and the compiled engines' per-epoch arrays."""


STEP_BYTES_PER_UNIT = 8
"""Bytes per buffer entry and step: the compiled kernels keep float32 buffers, forward and backward."""


def fit_memory(*, models: int, steps: int, vocab_size: int, hidden_size: int, gates: int, params: int,
               epochs: int) -> int:
    """Bytes that training ``models`` models by fit's protocol holds: each model's per-epoch history, its
    per-step buffers (about 3 gate blocks of gates x H, 5 of H and 5 of V per step: pre-activations, states,
    logits, their gradients, the one-hot input) and its parameters with their gradient and Adam moments."""
    per_step = 3 * gates * hidden_size + 5 * hidden_size + 5 * vocab_size
    per_model = epochs * HISTORY_BYTES_PER_EPOCH + steps * per_step * STEP_BYTES_PER_UNIT + params * 16
    return models * per_model


DIVERGED_GROWTH = 100.0
"""A run whose loss grows past this many times its first epoch's has diverged though it stays finite: at
--lr 1e30 the exam's RNN ends near a loss of 1e30, its argmax right 70% of the time by chance."""
DIVERGENCE = f"NaN, infinite or over {DIVERGED_GROWTH:g}x its first epoch's"
"""What a diverged run's loss became, in the words the sweep and tune print."""


@dataclass
class FitResult:
    """What :func:`fit` measured: per-epoch history and the exam's fitted values."""

    history: list[dict[str, float]] = field(default_factory=list)
    """One ``{'epoch', 'loss', 'accuracy'}`` per epoch, measured on that epoch's forward pass."""
    probs: Tensor | None = None
    """softmax of the last epoch's forward pass (taken before that epoch's optimizer step), on the CPU."""
    diverged_at_epoch: int | None = None
    """The epoch whose loss was NaN or infinite, for a run that diverged (its history holds the epochs before)."""

    @property
    def final_loss(self) -> float | None:
        """The last epoch's loss; None for a run that diverged."""
        return None if self.diverged_at_epoch is not None else self.history[-1]["loss"]

    def diverged_at(self) -> int | None:
        """The first epoch whose loss was NaN or infinite (:attr:`diverged_at_epoch`), or past
        :data:`DIVERGED_GROWTH` times the first epoch's; None for a run that did not diverge."""
        if self.diverged_at_epoch is not None:
            return self.diverged_at_epoch
        ceiling = DIVERGED_GROWTH * self.history[0]["loss"]
        return next((record["epoch"] for record in self.history if record["loss"] > ceiling), None)


def fit(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float = exam.LR, optimizer: str = exam.OPTIMIZER,
        loss: str = "cross_entropy", device: str | torch.device = "cpu", seed: int | None = None,
        callback: Callable[[int, float], None] | None = None, trainer: str | None = None) -> FitResult:
    """Train ``model`` on one whole sequence for ``epochs`` full-sequence steps, as the exam does.

    ``x``: model input (T, I) or indices (T,); ``y``: targets, one-hot (T, V) or indices (T,).
    The exam's fitted values are :attr:`FitResult.probs`. Each epoch is one :func:`train_step` with
    torch's optimizer, whatever the model's engine; ``trainer="compiled"`` asks for the compiled trainer
    instead: all the epochs run in one compiled call (``fused/compiled.py``; ``callback`` is then called for
    each epoch after that call), or it stops with what that trainer supports.
    """
    if epochs < 1:
        raise ValueError(f"train: epochs must be >= 1, got {epochs}")
    if trainer not in (None, COMPILED):
        raise ValueError(f"fit: trainer must be None (torch's optimizer, step by step) or {COMPILED!r}, "
                         f"got {trainer!r}")
    check_optimizer(optimizer, lr)
    criterion = loss_fn(loss)
    config = getattr(model, "config", None)
    check_memory(fit_memory(models=1, steps=x.shape[0], vocab_size=y.shape[-1] if y.is_floating_point() else 0,
                            hidden_size=getattr(config, "hidden_size", 0) * getattr(config, "num_layers", 1),
                            gates=GATES.get(getattr(config, "family", ""), 1), params=param_count(model),
                            epochs=epochs),
                 f"train: {epochs:,} epochs on {x.shape[0]:,} steps", "train fewer epochs (--epochs)")
    if seed is not None:
        torch.manual_seed(seed)
    device = resolve_device(device)
    model.to(device).train()
    x, y = x.to(device), y.to(device)
    result = FitResult()
    if trainer == COMPILED:
        from ..fused.compiled import check_supported, compiled_fit

        check_supported(model, x, optimizer, loss, device)
        with torch.no_grad():
            result.probs = compiled_fit(model, x, y, epochs, lr, result.history, callback)
        return result
    opt = make_optimizer(optimizer, model.parameters(), lr)
    for epoch in range(1, epochs + 1):
        logits, value, _ = train_step(model, x, y, criterion, opt, where=f"epoch {epoch}")
        result.history.append({"epoch": epoch, "loss": value.item(), "accuracy": accuracy(logits, y)})
        if callback is not None:
            callback(epoch, value.item())
    result.probs = logits.detach().softmax(-1).cpu()
    return result
