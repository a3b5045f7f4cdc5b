"""fit(): the exam's training protocol on one whole sequence: each epoch one forward pass, loss,
backward and optimizer step (:func:`step.train_step`), the fitted values taken from the last epoch."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch import Tensor

from .device import resolve_device
from .exam import protocol as exam
from .step import accuracy, check_optimizer, loss_fn, make_optimizer, train_step


@dataclass
class FitResult:
    """What :func:`fit` measured: per-epoch history and the exam's fitted values."""

    history: list[dict[str, float]] = field(default_factory=list)
    """One ``{'epoch', 'loss', 'accuracy'}`` per epoch, measured on that epoch's forward pass."""
    probs: Tensor | None = None
    """softmax of the last epoch's forward pass (taken before that epoch's optimizer step), on the CPU."""

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"]


def fit(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float = exam.LR, optimizer: str = exam.OPTIMIZER,
        loss: str = "cross_entropy", device: str | torch.device = "cpu", seed: int | None = None,
        callback: Callable[[int, float], None] | None = None) -> FitResult:
    """Train ``model`` on one whole sequence for ``epochs`` full-sequence steps, as the exam does.

    ``x``: model input (T, I) or indices (T,); ``y``: targets, one-hot (T, V) or indices (T,).
    The exam's fitted values are :attr:`FitResult.probs`. Each epoch is one :func:`train_step` with
    torch's optimizer, whatever the model's engine, except for a model built with ``engine="compiled"``:
    all its epochs run in one compiled call (``fused/compiled.py``; ``callback`` is then called for each
    epoch after that call), or it stops with what that engine supports.
    """
    if epochs < 1:
        raise ValueError(f"train: epochs must be >= 1, got {epochs}")
    check_optimizer(optimizer, lr)
    criterion = loss_fn(loss)
    if seed is not None:
        torch.manual_seed(seed)
    device = resolve_device(device)
    model.to(device).train()
    x, y = x.to(device), y.to(device)
    result = FitResult()
    if getattr(getattr(model, "config", None), "engine", None) == "compiled":
        from .fused.compiled import check_supported, compiled_fit

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
