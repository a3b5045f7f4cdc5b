"""The compiled trainer's one host: whole training runs of the exam's protocol in compiled code, for 1..K models,
on the CPU or the GPU (:func:`train_models`).

Every epoch runs inside one call (input projection, recurrence, head + softmax cross-entropy,
backward-through-time, torch's Adam update rule), with no autograd. ``fit(model, ..., trainer="compiled")``
trains one model through it (:func:`compiled_fit`: one lane, the model's own parameter memory) and
``fit_many`` many; each model's result is the same at every lane width, bit for bit, and matches ``fit``
with the autograd engine to float32 round-off. It runs the exam's protocol only; :func:`check_supported`
names what it supports and refuses the rest.
"""
from __future__ import annotations

import math
from typing import NamedTuple

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


SUPPORTED = ("rnn, lstm or gru, one layer, one-hot features (T, V) as input, no dropout, Adam, cross-entropy, on "
             "the CPU (the exam's protocol)")


def check_supported(model, x: Tensor, optimizer: str, loss: str, device: torch.device) -> None:
    """Refuse, naming each reason, what the compiled epoch cannot run; it never falls back silently."""
    c = model.config
    problems = [what for ok, what in [
        (c.family in FAMILY_CODES, f"family {c.family!r}"),
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

ONE_LANE_BELOW = 8
"""Fewer models than this train one lane each, never padded to a block: a 32-lane block's epoch costs 3 to 10
one-lane epochs (``nextchar bench --workload exam --workload exam-many``), and one-lane blocks run side by
side on the cores."""


def lane_width(models: int, model_bytes: int = 0) -> int:
    """Models per CPU block for ``models`` models that each hold ``model_bytes`` while training: one for a few
    (:data:`ONE_LANE_BELOW`) or where padding to whole blocks would not fit in memory, else
    :data:`~nextchar.fused.lane_trainer.LANES`. Each model's arithmetic is the same at every width, bit for bit."""
    from ..budget import memory_limit
    from .lane_trainer import LANES

    if models < ONE_LANE_BELOW:
        return 1
    return LANES if -(-models // LANES) * LANES * model_bytes <= memory_limit() else 1


def to_lanes(a: np.ndarray, lanes: int) -> np.ndarray:
    """(K, ...) -> (blocks, ..., lanes): the model axis split into blocks, innermost in each; K is padded
    with copies of the last model (their results are dropped). One lane: a view, (K, ..., 1)."""
    if lanes == 1:
        return np.ascontiguousarray(a[..., None])
    K = a.shape[0]
    blocks = -(-K // lanes)
    padded = np.concatenate([a, np.repeat(a[-1:], blocks * lanes - K, axis=0)]) if blocks * lanes > K else a
    split = padded.reshape(blocks, lanes, *a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(split, 1, -1))


def from_lanes(a: np.ndarray, K: int) -> np.ndarray:
    """(blocks, ..., lanes) -> (K, ...)."""
    merged = np.moveaxis(a, -1, 1)
    return merged.reshape(-1, *merged.shape[2:])[:K]


def flat_lanes(a: np.ndarray) -> np.ndarray:
    """(blocks, rows, ..., lanes) -> (blocks, rows, rest·lanes), the trainer's layout (a view); a bias
    (blocks, G, lanes) -> (blocks, G·lanes)."""
    return a.reshape(a.shape[0], -1) if a.ndim == 3 else a.reshape(a.shape[0], a.shape[1], -1)


class Trained(NamedTuple):
    """What :func:`train_models` measured, per model k (the trained weights are in its arrays)."""

    losses: np.ndarray
    """(K, E) float64: each epoch's mean loss (up to ``done[k]``)."""
    correct: np.ndarray
    """(K, E) int64: each epoch's count of right argmaxes."""
    probs: np.ndarray
    """(K, T, V): the last epoch's softmax (taken before its step)."""
    done: np.ndarray
    """(K,): the epochs model k completed; fewer than E when a loss stopped being finite (on the CPU a block
    of lanes stops with its first such model)."""


def train_models(arrays: list[np.ndarray], family: str, relu: bool, xs: np.ndarray, targets: np.ndarray,
                 lrs, epochs: int, *, on_gpu: bool = False, model_bytes: int = 0) -> Trained:
    """The one host of the compiled trainer: trains K models of one family by the exam's protocol, in place.

    ``arrays``: the six parameters (w_ih, w_hh, b_ih, b_hh, w_out, b_out), each stacked (K, ...) in torch's
    layout, in the dtype they train in; xs (T, I) and targets (T, V) in that dtype; model k's Adam takes
    ``lrs[k]``. On the CPU the models train in blocks of :func:`lane_width` lanes (one model is one lane, a
    call of ``lane_trainer.train_block``; more blocks run in parallel over the cores); ``on_gpu``: one block
    of all K models, one per GPU thread (``cuda_trainer``). ``model_bytes``: what one model holds while
    training, for the lane width's memory check."""
    from .lane_trainer import lane_tag, train_block, train_lanes
    from .workspace import Record, Weights, problem

    K, dtype = arrays[0].shape[0], arrays[0].dtype.type
    T, V = targets.shape
    width = K if on_gpu else lane_width(K, model_bytes)
    blocks = -(-K // width)
    laned = [to_lanes(a, width) for a in arrays]
    # the outputs are only written: made in blocks of lanes, not copied from (K, ...) arrays
    record = Record(np.zeros((blocks, epochs, width)), np.zeros((blocks, epochs, width), np.int64),
                    np.empty((blocks, T, V * width), dtype))
    text = problem(FAMILY_CODES[family], relu, xs, targets)
    weights, adam = Weights(*[flat_lanes(a) for a in laned]), to_lanes(adam_table(lrs, epochs, dtype), width)
    if on_gpu:
        from .cuda_trainer import train_on_gpu

        done = train_on_gpu(text, Weights(*[w[0] for w in weights]), adam[0], Record(*[r[0] for r in record]))
    elif K == 1:  # one model: one block called directly (the compiled engine), not through prange
        done = np.full(width, train_block(text, Weights(*[w[0] for w in weights]), adam[0],
                                          Record(*[r[0] for r in record]), lane_tag(width)))
    else:
        done = np.repeat(train_lanes(text, weights, adam, record, lane_tag(width)), width)
    for array, lanes in zip(arrays, laned):
        if not np.shares_memory(array, lanes):  # one lane trains the arrays themselves
            array[...] = from_lanes(lanes, K)
    probs = record.probs.reshape(blocks, T, V, width)
    return Trained(from_lanes(record.losses, K), from_lanes(record.correct, K), from_lanes(probs, K), done[:K])


def compiled_fit(model, x: Tensor, y: Tensor, epochs: int, lr: float, history: list, callback=None) -> Tensor:
    """Train in place for ``epochs`` in one compiled call (:func:`train_models`, one model); appends
    per-epoch loss/accuracy to ``history`` (and calls ``callback(epoch, loss)`` for each, after the call);
    returns the last epoch's probs."""
    cell, head = model.core.cells[0], model.head
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, head.weight, head.bias]
    arrays = [p.detach().numpy()[None] for p in params]  # (1, ...) views: trained in place
    xs, targets = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())
    T = xs.shape[0]
    run = train_models(arrays, model.config.family, model.config.nonlinearity == "relu", xs, targets, [lr], epochs)
    done = int(run.done[0])
    for epoch in range(1, done + 1):
        history.append({"epoch": epoch, "loss": float(run.losses[0, epoch - 1]),
                        "accuracy": int(run.correct[0, epoch - 1]) / T})
        if callback is not None:
            callback(epoch, float(run.losses[0, epoch - 1]))
    if done < epochs:
        check_finite(run.losses[0, done], f"epoch {done + 1}")
    return torch.from_numpy(run.probs[0])
