"""The compiled engine: whole training runs of the exam's protocol in compiled code, for one model.

``fit(model, ..., trainer="compiled")`` trains a fused model through :func:`compiled_fit`: every epoch
runs in one call of the compiled trainer (``lane_trainer.train_block``, with one lane) on the model's own
parameter memory (input projection, recurrence, head + softmax cross-entropy, backward-through-time,
torch's Adam update rule), with no autograd. It matches ``fit`` with the autograd engine to float32
round-off, and the many engine (the same trainer, many lanes) bit for bit. It runs the exam's protocol
only; :func:`check_supported` names what it supports and refuses the rest.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..step import check_finite


def adam_table(lrs, epochs: int, dtype, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
    """The scalars torch's Adam computes in Python floats at each step 1..E, for each learning rate, cast to
    ``dtype``: (K, E, 6) = 1 - beta1, beta2, 1 - beta2, lr / bias1, sqrt(bias2), eps. The bias corrections
    are Python's, once per epoch; lr / bias1, the one per-model value, is an IEEE division either way."""
    steps = range(1, epochs + 1)
    table = np.empty((len(lrs), epochs, 6))
    table[..., 0], table[..., 1], table[..., 2], table[..., 5] = 1 - beta1, beta2, 1 - beta2, eps
    table[..., 3] = np.asarray(lrs, np.float64)[:, None] / np.array([1 - beta1 ** step for step in steps])
    table[..., 4] = [math.sqrt(1 - beta2 ** step) for step in steps]
    with np.errstate(over="ignore"):  # an lr past float32's range is inf there, as in torch's Adam: it diverges
        return table.astype(dtype)


SUPPORTED = ("one layer, one-hot features (T, V) as input, no dropout, Adam, cross-entropy, on the CPU "
             "(the exam's protocol)")


def check_supported(model, x: Tensor, optimizer: str, loss: str, device: torch.device) -> None:
    """Refuse, naming each reason, what the compiled epoch cannot run; it never falls back silently."""
    c = model.config
    problems = [what for ok, what in [
        (c.num_layers == 1, f"num_layers {c.num_layers}"),
        (c.embedding_dim is None, f"embedding_dim {c.embedding_dim}"),
        (c.dropout == 0, f"dropout {c.dropout}"),
        (optimizer == "adam", f"optimizer {optimizer!r}"),
        (loss == "cross_entropy", f"loss {loss!r}"),
        (device.type == "cpu", f"device {device}"),
        (x.is_floating_point() and x.dim() == 2, f"input of shape {tuple(x.shape)} and dtype {x.dtype}"),
        (x.dtype in (torch.float32, torch.float64), f"dtype {x.dtype}"),
    ] if not ok]
    if problems:
        raise ValueError(f"compiled trainer: runs {SUPPORTED}; got {', '.join(problems)}. "
                         "Use --engine fused (compiled kernels under autograd) for anything else")


FAMILY_CODES = {"rnn": 0, "lstm": 1, "gru": 2}


def compiled_fit(model, x: Tensor, y: Tensor, epochs: int, lr: float, history: list, callback=None) -> Tensor:
    """Train in place for ``epochs`` in one compiled call; appends per-epoch loss/accuracy to ``history``
    (and calls ``callback(epoch, loss)`` for each, after the call); returns the last epoch's probs."""
    from .lane_trainer import lane_tag, train_block

    cell, head = model.core.cells[0], model.head
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, head.weight, head.bias]
    arrays = [p.detach().numpy() for p in params]  # with one lane the trainer's layout is torch's: views
    dtype = arrays[0].dtype.type
    xs, targets = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())
    T = xs.shape[0]
    adam = adam_table([lr], epochs, dtype)[0, ..., None]  # (E, 6, 1 lane)
    losses, correct = np.zeros((epochs, 1), np.float64), np.zeros((epochs, 1), np.int64)
    probs = np.empty((T, targets.shape[1]), dtype)
    done = train_block(lane_tag(1), FAMILY_CODES[model.config.family], model.config.nonlinearity == "relu",
                       dtype(1), xs, targets, dtype(1 / T), *arrays, adam, losses, correct, probs)
    for epoch in range(1, done + 1):
        history.append({"epoch": epoch, "loss": float(losses[epoch - 1, 0]),
                        "accuracy": int(correct[epoch - 1, 0]) / T})
        if callback is not None:
            callback(epoch, float(losses[epoch - 1, 0]))
    if done < epochs:
        check_finite(losses[done, 0], f"epoch {done + 1}")
    return torch.from_numpy(probs)
