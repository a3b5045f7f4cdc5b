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
def softmax_cross_entropy(logits, targets, scale, fast_exp, probs, dlogits):
    """Mean over N of -Σ_v y_v log softmax(logits)_v, with probability targets y (N, V); scale = 1/N.

    Writes probs and dlogits = (p Σy - y) / N. Returns (loss in float64, correct predictions). The
    exponentials are taken in one batched pass (``fast_exp``: the vectorizable float32 expf)."""
    N, V = logits.shape
    zero = scale - scale
    tops = np.empty(N, logits.dtype)
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
        for v in range(V):
            probs[n, v] = logits[n, v] - top
        tops[n] = top
        correct += best == best_target
    kernels.exp_inplace(probs.reshape(-1), np.empty(N * V, np.int32), fast_exp)
    total = 0.0  # float64 on purpose: the loss is summed over ~1000 rows
    for n in range(N):
        denom = zero
        for v in range(V):
            denom += probs[n, v]
        log_denom = np.log(denom)
        mass = zero
        for v in range(V):
            probs[n, v] /= denom
            mass += targets[n, v]
            total -= float(targets[n, v]) * (float(logits[n, v] - tops[n]) - float(log_denom))
        for v in range(V):
            dlogits[n, v] = (probs[n, v] * mass - targets[n, v]) * scale
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


FAMILY_CODES = {"rnn": 0, "lstm": 1, "gru": 2}


@njit(cache=True)
def train_epochs(family, relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
                 losses, correct, probs):
    """Every epoch of the exam's protocol in one compiled call; the parameters are updated in place (the
    gradients and Adam's moments live here, starting from zero as torch's do). ``family``: 0 rnn, 1 lstm,
    2 gru. ``adam`` (E, 6): each epoch's Adam scalars (:func:`adam_scalars`). Writes losses (E,),
    correct (E,) and the last forward pass's probs (T, V). Returns the number of epochs completed: fewer
    than E when a loss is not finite (no step taken then)."""
    g_ih, g_hh, gb_ih, gb_hh = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh)
    g_out, gb_out = np.zeros_like(w_out), np.zeros_like(b_out)
    m_ih, m_hh, mb_ih, mb_hh = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh)
    m_out, mb_out = np.zeros_like(w_out), np.zeros_like(b_out)
    v_ih, v_hh, vb_ih, vb_hh = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh)
    v_out, vb_out = np.zeros_like(w_out), np.zeros_like(b_out)
    T = xs.shape[0]
    G, H = w_hh.shape
    gi, hs = np.empty((T, 1, G), xs.dtype), np.empty((T, 1, H), xs.dtype)
    logits, dlogits = np.empty_like(probs), np.empty_like(probs)
    dhs, dgh, dgi = np.empty((T, 1, H), xs.dtype), np.empty((T, 1, G), xs.dtype), np.empty((T, 1, G), xs.dtype)
    h0 = np.zeros((1, H), xs.dtype)  # also the zero gradient of the final state, which nothing uses
    cs, tanh_cs = np.empty((T, 1, H), xs.dtype), np.empty((T, 1, H), xs.dtype)
    gates = np.empty((T, 1, 4 * H if family != 0 else H), xs.dtype)
    w_hh_t, h_prev = np.empty((H, G), xs.dtype), np.zeros((T, H), xs.dtype)
    hs_flat, dhs_flat = hs.reshape(T, H), dhs.reshape(T, H)
    for epoch in range(losses.shape[0]):
        linear_forward(xs, w_ih, b_ih, gi.reshape(T, G))
        for g in range(G):
            for j in range(H):
                w_hh_t[j, g] = w_hh[g, j]
        if family == 1:
            kernels.lstm_forward(gi, w_hh_t, b_hh, h0, h0, one, fast_exp, hs, cs, tanh_cs, gates)
        elif family == 2:
            kernels.gru_forward(gi, w_hh_t, b_hh, h0, one, fast_exp, hs, gates)
        else:
            kernels.rnn_forward(gi, w_hh_t, b_hh, h0, relu, one, fast_exp, hs)
        linear_forward(hs_flat, w_out, b_out, logits)
        loss, right = softmax_cross_entropy(logits, targets, scale, fast_exp, probs, dlogits)
        losses[epoch], correct[epoch] = loss, right
        if not np.isfinite(loss):
            return epoch
        linear_backward(hs_flat, dlogits, g_out, gb_out)
        kernels.matmul_small(dlogits, w_out, dhs_flat)  # dhs = dlogits W_out (loops: the order the many engine's lanes repeat)
        d_input = dgh  # rnn and lstm: ∂L/∂gi = ∂L/∂gh; the gru's n block differs
        if family == 1:
            kernels.lstm_backward(dhs, h0, h0, cs, tanh_cs, h0, gates, w_hh, one, dgh)
        elif family == 2:
            kernels.gru_backward(dhs, h0, hs, h0, gates, w_hh, one, dgi, dgh)
            d_input = dgi
        else:
            kernels.rnn_backward(dhs, h0, hs, w_hh, relu, one, dgh)
        h_prev[1:] = hs_flat[:-1]  # h_{t-1}, with h_{-1} = 0
        linear_backward(h_prev, dgh.reshape(T, G), g_hh, gb_hh)
        linear_backward(xs, d_input.reshape(T, G), g_ih, gb_ih)
        a = adam[epoch]
        adam_update(w_ih, g_ih, m_ih, v_ih, a[0], a[1], a[2], a[3], a[4], a[5])
        adam_update(w_hh, g_hh, m_hh, v_hh, a[0], a[1], a[2], a[3], a[4], a[5])
        adam_update(b_ih, gb_ih, mb_ih, vb_ih, a[0], a[1], a[2], a[3], a[4], a[5])
        adam_update(b_hh, gb_hh, mb_hh, vb_hh, a[0], a[1], a[2], a[3], a[4], a[5])
        adam_update(w_out, g_out, m_out, v_out, a[0], a[1], a[2], a[3], a[4], a[5])
        adam_update(b_out, gb_out, mb_out, vb_out, a[0], a[1], a[2], a[3], a[4], a[5])
    return losses.shape[0]


def compiled_fit(model, x: Tensor, y: Tensor, epochs: int, lr: float, history: list, callback=None) -> Tensor:
    """Train in place for ``epochs`` in one compiled call; appends per-epoch loss/accuracy to ``history``
    (and calls ``callback(epoch, loss)`` for each, after the call); returns the last epoch's probs."""
    cell, head = model.core.cells[0], model.head
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, head.weight, head.bias]
    arrays = [p.detach().numpy() for p in params]  # share memory: updates land in the model
    dtype = arrays[0].dtype.type
    xs, targets = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())
    T = xs.shape[0]
    adam = np.array([adam_scalars(epoch, lr, dtype) for epoch in range(1, epochs + 1)], dtype).reshape(epochs, 6)
    losses, correct = np.zeros(epochs, np.float64), np.zeros(epochs, np.int64)
    probs = np.empty((T, targets.shape[1]), dtype)
    done = train_epochs(FAMILY_CODES[model.config.family], model.config.nonlinearity == "relu",
                        dtype is np.float32, dtype(1), xs, targets, dtype(1 / T), *arrays, adam,
                        losses, correct, probs)
    for epoch in range(1, done + 1):
        history.append({"epoch": epoch, "loss": float(losses[epoch - 1]), "accuracy": int(correct[epoch - 1]) / T})
        if callback is not None:
            callback(epoch, float(losses[epoch - 1]))
    if done < epochs:
        check_finite(losses[done], f"epoch {done + 1}")
    return torch.from_numpy(probs.copy())
