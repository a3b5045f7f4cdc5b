"""The compiled engine: whole training epochs of the exam's protocol in compiled code.

A model built with ``engine="compiled"`` is trained by ``fit`` through :func:`compiled_fit`: each epoch
is a handful of numba calls on the model's own parameter memory (input projection, the recurrence
kernels, head + softmax cross-entropy, backward-through-time, torch's Adam update rule), with no
autograd. It matches ``fit`` with the autograd engine to float32 round-off. It runs the exam's
protocol only; :func:`check_supported` names what it supports and refuses the rest.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import Tensor

from ..step import check_finite
from . import kernels


@njit(cache=True)
def linear_forward(x, w, b, out):
    """out (N, G) = x (N, I) W^T + b, W (G, I)."""
    N, I = x.shape
    G = w.shape[0]
    for n in range(N):
        for g in range(G):
            acc = b[g]
            for i in range(I):
                acc += x[n, i] * w[g, i]
            out[n, g] = acc


@njit(cache=True)
def linear_backward(x, dout, dw, db):
    """dW (G, I) = dout^T x;  db (G,) = Σ_n dout."""
    N, I = x.shape
    G = dw.shape[0]
    dw[:] = 0
    db[:] = 0
    for n in range(N):
        for g in range(G):
            d = dout[n, g]
            db[g] += d
            for i in range(I):
                dw[g, i] += d * x[n, i]


@njit(cache=True)
def softmax_cross_entropy(logits, targets, scale, probs, dlogits):
    """Mean over N of -Σ_v y_v log softmax(logits)_v, with probability targets y (N, V); scale = 1/N.

    Writes probs and dlogits = (p Σy - y) / N. Returns (loss in float64, correct predictions)."""
    N, V = logits.shape
    zero = scale - scale
    total = 0.0  # float64 on purpose: the loss is summed over ~1000 rows
    correct = 0
    for n in range(N):
        top = logits[n, 0]
        best = 0
        best_target = 0
        for v in range(V):
            if logits[n, v] > top:
                top, best = logits[n, v], v
            if targets[n, v] > targets[n, best_target]:
                best_target = v
        denom = zero
        for v in range(V):
            probs[n, v] = np.exp(logits[n, v] - top)
            denom += probs[n, v]
        log_denom = np.log(denom)
        mass = zero
        for v in range(V):
            probs[n, v] /= denom
            mass += targets[n, v]
            total -= float(targets[n, v]) * (float(logits[n, v] - top) - float(log_denom))
        for v in range(V):
            dlogits[n, v] = (probs[n, v] * mass - targets[n, v]) * scale
        correct += best == best_target
    return total / N, correct


@njit(cache=True)
def adam_update(param, grad, exp_avg, exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2, step_size,
                bias2_sqrt, eps):
    """torch.optim.Adam's single-tensor rule (no weight decay, not amsgrad), in place, with its operation
    order; the scalars arrive precomputed in float64 and cast to the param's dtype, as torch does."""
    flat_p, flat_g = param.reshape(-1), grad.reshape(-1)
    flat_m, flat_v = exp_avg.reshape(-1), exp_avg_sq.reshape(-1)
    for k in range(flat_p.size):
        g = flat_g[k]
        flat_m[k] += one_minus_beta1 * (g - flat_m[k])  # exp_avg.lerp_(grad, 1 - beta1)
        flat_v[k] = flat_v[k] * beta2 + one_minus_beta2 * (g * g)  # mul_(beta2).addcmul_(g, g, 1 - beta2)
        flat_p[k] -= step_size * (flat_m[k] / (np.sqrt(flat_v[k]) / bias2_sqrt + eps))  # addcdiv_


def adam_scalars(step: int, lr: float, dtype, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """The scalars torch's Adam computes in Python floats at ``step``, cast to ``dtype``."""
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    return (dtype(1 - beta1), dtype(beta2), dtype(1 - beta2), dtype(lr / bias1), dtype(math.sqrt(bias2)),
            dtype(eps))


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
        raise ValueError(f"compiled engine: runs {SUPPORTED}; got {', '.join(problems)}. "
                         "Use --engine fused (compiled kernels under autograd) for anything else")


def compiled_fit(model, x: Tensor, y: Tensor, epochs: int, lr: float, history: list, callback=None) -> Tensor:
    """Train in place for ``epochs``; appends per-epoch loss/accuracy to ``history``; returns the last probs."""
    cell, head = model.core.cells[0], model.head
    family, relu = model.config.family, model.config.nonlinearity == "relu"
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, head.weight, head.bias]
    arrays = [p.detach().numpy() for p in params]  # share memory: updates land in the model
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = arrays
    grads = [np.zeros_like(a) for a in arrays]
    moments = [(np.zeros_like(a), np.zeros_like(a)) for a in arrays]
    dtype = w_ih.dtype.type
    one = dtype(1)
    xs, targets = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())
    T, H, G = xs.shape[0], cell.hidden_size, w_hh.shape[0]
    gi, hs = np.empty((T, 1, G), dtype), np.empty((T, 1, H), dtype)
    logits, probs, dlogits = (np.empty((T, targets.shape[1]), dtype) for _ in range(3))
    dhs, dgh, dgi = np.empty((T, 1, H), dtype), np.empty((T, 1, G), dtype), np.empty((T, 1, G), dtype)
    h0 = np.zeros((1, H), dtype)  # also the zero gradient of the final state, which nothing uses
    cs, tanh_cs = np.empty((T, 1, H), dtype), np.empty((T, 1, H), dtype)
    gates = np.empty((T, 1, 4 * H if family != "rnn" else H), dtype)
    fast_exp = dtype is np.float32
    for epoch in range(1, epochs + 1):
        linear_forward(xs, w_ih, b_ih, gi.reshape(T, G))
        w_hh_t = np.ascontiguousarray(w_hh.T)
        if family == "lstm":
            kernels.lstm_forward(gi, w_hh_t, b_hh, h0, h0, one, fast_exp, hs, cs, tanh_cs, gates)
        elif family == "gru":
            kernels.gru_forward(gi, w_hh_t, b_hh, h0, one, fast_exp, hs, gates)
        else:
            kernels.rnn_forward(gi, w_hh_t, b_hh, h0, relu, one, fast_exp, hs)
        linear_forward(hs.reshape(T, H), w_out, b_out, logits)
        loss, correct = softmax_cross_entropy(logits, targets, dtype(1 / T), probs, dlogits)
        check_finite(loss, f"epoch {epoch}")
        linear_backward(hs.reshape(T, H), dlogits, grads[4], grads[5])
        kernels.matmul_into(dlogits, w_out, dhs.reshape(T, H))  # dhs = dlogits W_out
        d_input = dgh  # rnn and lstm: ∂L/∂gi = ∂L/∂gh; the gru's n block differs
        if family == "lstm":
            kernels.lstm_backward(dhs, h0, h0, cs, tanh_cs, h0, gates, w_hh, one, dgh)
        elif family == "gru":
            kernels.gru_backward(dhs, h0, hs, h0, gates, w_hh, one, dgi, dgh)
            d_input = dgi
        else:
            kernels.rnn_backward(dhs, h0, hs, w_hh, relu, one, dgh)
        h_prev = np.concatenate((h0, hs.reshape(T, H)[:-1]))
        linear_backward(h_prev, dgh.reshape(T, G), grads[1], grads[3])
        linear_backward(xs, d_input.reshape(T, G), grads[0], grads[2])
        scalars = adam_scalars(epoch, lr, dtype)
        for param, grad, (m, v) in zip(arrays, grads, moments):
            adam_update(param, grad, m, v, *scalars)
        history.append({"epoch": epoch, "loss": loss, "accuracy": correct / T})
        if callback is not None:
            callback(epoch, loss)
    return torch.from_numpy(probs.copy())
