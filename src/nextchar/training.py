"""Full-sequence training, the exam's protocol: one forward pass, loss, backward, step per epoch."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .device import resolve_device
from .step import NonFiniteLossError, check_finite, train_step

# NonFiniteLossError and check_finite live in step.py, with the step; they stay importable from here.
__all__ = ["FitResult", "LOSSES", "NonFiniteLossError", "OPTIMIZERS", "accuracy", "check_finite", "fit", "loss_fn",
           "make_optimizer", "param_count", "perplexity"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
}
LOSSES = ("cross_entropy", "mse")


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"train: optimizer must be one of {tuple(OPTIMIZERS)}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"train: lr must be > 0, got {lr}")
    return OPTIMIZERS[name](params, lr=lr)


def loss_fn(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """``cross_entropy`` on logits, or ``mse`` between softmax probabilities and one-hot targets.

    Targets may be class indices (...,) or probabilities / one-hot (..., V); logits are (..., V).
    """
    if name == "cross_entropy":
        return lambda logits, target: F.cross_entropy(logits.flatten(0, -2), _flat_target(target, logits))
    if name == "mse":
        return lambda logits, target: F.mse_loss(logits.softmax(-1), _one_hot_like(target, logits))
    raise ValueError(f"train: loss must be one of {LOSSES}, got {name!r}")


def _flat_target(target: Tensor, logits: Tensor) -> Tensor:
    return target.flatten(0, -2) if target.is_floating_point() else target.flatten()


def _one_hot_like(target: Tensor, logits: Tensor) -> Tensor:
    return target if target.is_floating_point() else F.one_hot(target, logits.shape[-1]).to(logits.dtype)


def accuracy(logits: Tensor, target: Tensor) -> float:
    """Share of positions whose most likely character is the target's."""
    labels = target.argmax(-1) if target.is_floating_point() else target
    return (logits.argmax(-1) == labels).float().mean().item()


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


def fit(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float = 0.1, optimizer: str = "adam",
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
    if seed is not None:
        torch.manual_seed(seed)
    device = resolve_device(device)
    model.to(device).train()
    x, y = x.to(device), y.to(device)
    criterion = loss_fn(loss)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    result = FitResult()
    if getattr(getattr(model, "config", None), "engine", None) == "compiled":
        from .fused.compiled import check_supported, compiled_fit

        check_supported(model, x, optimizer, loss, device)
        with torch.no_grad():
            result.probs = compiled_fit(model, x, y, epochs, lr, result.history, callback)
        return result
    for epoch in range(1, epochs + 1):
        logits, value, _ = train_step(model, x, y, criterion, opt, where=f"epoch {epoch}")
        result.history.append({"epoch": epoch, "loss": value.item(), "accuracy": accuracy(logits, y)})
        if callback is not None:
            callback(epoch, value.item())
    result.probs = logits.detach().softmax(-1).cpu()
    return result


def param_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def perplexity(mean_loss: float) -> float:
    """exp(loss in nats/char); inf once it would overflow."""
    return math.exp(mean_loss) if mean_loss < 700 else math.inf
