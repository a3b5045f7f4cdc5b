"""One training step, written once: every trainer in nextchar (``fit``, ``train``, the claims, the
bench) calls :func:`train_step`, so they all run the same operations in the same order.

The canonical order: zero the gradients, forward, loss, stop on a non-finite loss, backward, clip the
global gradient norm (optional), optimizer step.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .cells import State


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or weights)."""


def check_finite(loss: Tensor | float, where: str) -> None:
    """Stop with a clear message on a NaN or infinite loss (a tensor, or a float from compiled code)."""
    value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"train: loss became {value} at {where}; try a lower learning rate or gradient clipping (--clip)"
        )


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
               where: str = "this step", clip_grads: Callable = torch.nn.utils.clip_grad_norm_) -> StepOutput:
    """zero_grad, ``model(x, state)``, ``criterion(logits, target)``, finite check, backward, clip, step.

    ``model`` answers ``forward(x, state) -> (logits, state)`` (a DDP wrapper too); ``where`` names the
    step in the error a non-finite loss raises; ``clip_grads(params, clip)`` clips (stacked models clip
    each model apart: ``stacked.clip_per_model``).
    """
    optimizer.zero_grad(set_to_none=True)
    logits, state = model(x, state)
    loss = criterion(logits, target)
    check_finite(loss, where)
    loss.backward()
    if clip:
        clip_grads(optimizer_params(optimizer), clip)
    optimizer.step()
    return StepOutput(logits, loss.detach(), state)
