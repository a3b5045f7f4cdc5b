"""One training step, written once, with what every trainer shares: the losses, the optimizers and the
metrics. Every trainer in nextchar (``fit``, ``train``, the claims, the bench) calls :func:`train_step`,
so they all run the same operations in the same order.

The canonical order: zero the gradients, forward, loss, stop on a non-finite loss, backward, clip the
global gradient norm (optional), optimizer step.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .cells import State


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or weights)."""


LOWER_LR = "try a lower learning rate"
"""What to do about a diverging run, where the command has no other remedy (the exam's protocol has no clip)."""


def check_finite(loss: Tensor | float, where: str, hint: str = LOWER_LR) -> None:
    """Stop with a clear message on a NaN or infinite loss (a tensor, or a float from compiled code)."""
    value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(f"train: loss became {value} at {where}; {hint}")


class StepOutput(NamedTuple):
    logits: Tensor
    """The forward pass's output, (T, [B,] V), taken before the optimizer step."""
    loss: Tensor
    """The loss, detached."""
    state: State | None
    """The recurrent state after the last step (not detached)."""


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """The parameters an optimizer updates, in its order (the model's own order when built from it)."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def train_step(model: torch.nn.Module, x: Tensor, target: Tensor, criterion: Callable[[Tensor, Tensor], Tensor],
               optimizer: torch.optim.Optimizer, *, state: State | None = None, clip: float | None = None,
               where: str = "this step", hint: str = LOWER_LR,
               clip_grads: Callable = torch.nn.utils.clip_grad_norm_) -> StepOutput:
    """zero_grad, ``model(x, state)``, ``criterion(logits, target)``, finite check, backward, clip, step.

    ``model`` answers ``forward(x, state) -> (logits, state)`` (a DDP wrapper too); ``where`` names the
    step in the error a non-finite loss raises, ``hint`` what to do about it; ``clip_grads(params, clip)``
    clips (stacked models clip each model apart: ``stacked.clip_per_model``).
    """
    optimizer.zero_grad(set_to_none=True)
    logits, state = model(x, state)
    loss = criterion(logits, target)
    check_finite(loss, where, hint)
    loss.backward()
    if clip:
        clip_grads(optimizer_params(optimizer), clip)
    optimizer.step()
    return StepOutput(logits, loss.detach(), state)


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
}
LOSSES = ("cross_entropy", "mse")


def check_optimizer(name: str, lr: float) -> None:
    """Stop before any work on an optimizer nextchar does not know or a learning rate that is not > 0."""
    if name not in OPTIMIZERS:
        raise ValueError(f"train: optimizer must be one of {tuple(OPTIMIZERS)}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"train: lr must be > 0, got {lr}")


def make_optimizer(name: str, params, lr: float, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """``weight_decay`` None keeps the optimizer's own default (AdamW's 0.01, the others' 0)."""
    check_optimizer(name, lr)
    extra = {} if weight_decay is None else {"weight_decay": weight_decay}
    return OPTIMIZERS[name](params, lr=lr, **extra)


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


def param_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def perplexity(mean_loss: float) -> float:
    """exp(loss in nats/char); inf once it would overflow."""
    return math.exp(mean_loss) if mean_loss < 700 else math.inf
