"""The many engine's RNN kernel with the model as the innermost axis: SIMD lanes over models.

One compiled call trains L models side by side: every array has the model last (``w_hh`` (G, H, L),
``hs`` (T, H, L), ...), so each loop's innermost step over the L models is contiguous and LLVM turns it
into vector instructions: one instruction advances several models. Blocks of L models run in parallel
over the cores (``prange``). Each model's operations are exactly those of ``compiled.train_epochs`` in
the same order (the input projection, the recurrence, the head, softmax cross-entropy, BPTT, Adam), so
each model's result is bit-equal to training it alone with the compiled engine.

Shapes per block: I inputs (one-hot, shared by all models), V outputs, H hidden, G = H (rnn), T steps,
E epochs, L lanes (models).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernels import exp_inplace

LANES = 64
"""Models per block: a few vector registers wide."""


@njit(cache=True, inline="always")
def _linear_shared_x(x, w, b, out):
    """out (N, G, L) = b + Σ_i x[n, i] w[g, i]; x (N, I) shared by the lanes, w (G, I, L), b (G, L)."""
    N, I = x.shape
    G, _, L = w.shape
    for n in range(N):
        for g in range(G):
            for k in range(L):
                out[n, g, k] = b[g, k]
            for i in range(I):
                x_ni = x[n, i]
                for k in range(L):
                    out[n, g, k] += x_ni * w[g, i, k]


@njit(cache=True, inline="always")
def _linear_lanes(x, w, b, out):
    """out (N, G, L) = b + Σ_i x[n, i] w[g, i]; x (N, I, L) per lane."""
    N, I, L = x.shape
    G = w.shape[0]
    for n in range(N):
        for g in range(G):
            for k in range(L):
                out[n, g, k] = b[g, k]
            for i in range(I):
                for k in range(L):
                    out[n, g, k] += x[n, i, k] * w[g, i, k]


@njit(cache=True, inline="always")
def _linear_backward_shared_x(x, dout, dw, db):
    """dw (G, I, L) = Σ_n dout[n, g] x[n, i]; db (G, L) = Σ_n dout[n, g]; x (N, I) shared."""
    N, I = x.shape
    G, _, L = dw.shape
    dw[:] = 0
    db[:] = 0
    for n in range(N):
        for g in range(G):
            for k in range(L):
                db[g, k] += dout[n, g, k]
            for i in range(I):
                x_ni = x[n, i]
                for k in range(L):
                    dw[g, i, k] += dout[n, g, k] * x_ni


@njit(cache=True, inline="always")
def _linear_backward_lanes(x, dout, dw, db):
    N, I, L = x.shape
    G = dw.shape[0]
    dw[:] = 0
    db[:] = 0
    for n in range(N):
        for g in range(G):
            for k in range(L):
                db[g, k] += dout[n, g, k]
            for i in range(I):
                for k in range(L):
                    dw[g, i, k] += dout[n, g, k] * x[n, i, k]


@njit(cache=True, inline="always")
def _adam(param, grad, m, v, a):
    """torch's Adam rule per element, as compiled.adam_update; a (6, L): each lane's scalars."""
    p, g_, mm, vv = param.reshape(-1, param.shape[-1]), grad.reshape(-1, grad.shape[-1]), \
        m.reshape(-1, m.shape[-1]), v.reshape(-1, v.shape[-1])
    for r in range(p.shape[0]):
        for k in range(p.shape[1]):
            g = g_[r, k]
            mm[r, k] += a[0, k] * (g - mm[r, k])
            vv[r, k] = vv[r, k] * a[1, k] + a[2, k] * (g * g)
            p[r, k] -= a[3, k] * (mm[r, k] / (np.sqrt(vv[r, k]) / a[4, k] + a[5, k]))


@njit(cache=True)
def train_rnn_block(relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
                    losses, correct, probs):
    """One block of L RNN models, every epoch: the lanes version of compiled.train_epochs (family rnn).
    w_ih (H, I, L), w_hh (H, H, L), b_ih/b_hh (H, L), w_out (V, H, L), b_out (V, L), adam (E, 6, L),
    losses/correct (E, L), probs (T, V, L). Returns the epochs every lane completed."""
    T, I = xs.shape
    H, _, L = w_hh.shape
    V = w_out.shape[0]
    dtype = xs.dtype
    zero, two = one - one, one + one
    gi, hs = np.empty((T, H, L), dtype), np.empty((T, H, L), dtype)
    logits, dlogits = np.empty((T, V, L), dtype), np.empty((T, V, L), dtype)
    dhs, dgh, h_prev = np.empty((T, H, L), dtype), np.empty((T, H, L), dtype), np.zeros((T, H, L), dtype)
    h, gh, e = np.empty((H, L), dtype), np.empty((H, L), dtype), np.empty((H, L), dtype)
    bits, bits_out = np.empty(H * L, np.int32), np.empty(T * V * L, np.int32)
    tops, dh_next = np.empty((T, L), dtype), np.empty((H, L), dtype)
    grads = (np.empty_like(w_ih), np.empty_like(w_hh), np.empty_like(b_ih), np.empty_like(b_hh),
             np.empty_like(w_out), np.empty_like(b_out))
    means = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh),
             np.zeros_like(w_out), np.zeros_like(b_out))
    squares = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh),
               np.zeros_like(w_out), np.zeros_like(b_out))
    best_target = np.zeros(T, np.int64)
    mass = np.empty(T, dtype)
    for n in range(T):  # the targets are shared: their argmax and mass once
        for v in range(V):
            if targets[n, v] > targets[n, best_target[n]]:
                best_target[n] = v
        s = zero
        for v in range(V):
            s += targets[n, v]
        mass[n] = s
    best, top = np.empty(L, np.int64), np.empty(L, dtype)
    total = np.empty(L, np.float64)
    denom, log_denom = np.empty(L, dtype), np.empty(L, dtype)
    right = np.empty(L, np.int64)
    for epoch in range(losses.shape[0]):
        _linear_shared_x(xs, w_ih, b_ih, gi)
        # ---- recurrence: h_t = act(gi_t + W_hh h_{t-1} + b_hh), as kernels.rnn_forward ----
        h[:] = 0
        for t in range(T):
            for j in range(H):
                for k in range(L):
                    gh[j, k] = zero
                for p in range(H):
                    for k in range(L):
                        gh[j, k] += h[p, k] * w_hh[j, p, k]
            for j in range(H):
                for k in range(L):
                    a = gi[t, j, k] + (gh[j, k] + b_hh[j, k])
                    if relu:
                        h[j, k] = a if a > zero else zero
                    else:
                        e[j, k] = -(a + a)
            if not relu:
                exp_inplace(e.reshape(-1), bits, fast_exp)
                for j in range(H):
                    for k in range(L):
                        h[j, k] = two / (one + e[j, k]) - one
            for j in range(H):
                for k in range(L):
                    hs[t, j, k] = h[j, k]
        _linear_lanes(hs, w_out, b_out, logits)
        # ---- softmax cross-entropy, as compiled.softmax_cross_entropy ----
        right[:] = 0
        for n in range(T):
            for k in range(L):
                top[k] = logits[n, 0, k]
                best[k] = 0
            for v in range(V):
                for k in range(L):
                    if logits[n, v, k] > top[k]:
                        top[k] = logits[n, v, k]
                        best[k] = v
            for v in range(V):
                for k in range(L):
                    probs[n, v, k] = logits[n, v, k] - top[k]
            for k in range(L):
                tops[n, k] = top[k]
                right[k] += best[k] == best_target[n]
        exp_inplace(probs.reshape(-1), bits_out, fast_exp)
        total[:] = 0.0
        for n in range(T):  # the lanes innermost; per lane the order of compiled.softmax_cross_entropy
            for k in range(L):
                denom[k] = zero
            for v in range(V):
                for k in range(L):
                    denom[k] += probs[n, v, k]
            for k in range(L):
                log_denom[k] = np.log(denom[k])
            for v in range(V):
                t_nv = targets[n, v]
                for k in range(L):
                    probs[n, v, k] /= denom[k]
                    total[k] -= float(t_nv) * (float(logits[n, v, k] - tops[n, k]) - float(log_denom[k]))
            for v in range(V):
                t_nv = targets[n, v]
                for k in range(L):
                    dlogits[n, v, k] = (probs[n, v, k] * mass[n] - t_nv) * scale
        finite = True
        for k in range(L):
            losses[epoch, k] = total[k] / T
            correct[epoch, k] = right[k]
            finite = finite and np.isfinite(losses[epoch, k])
        if not finite:
            return epoch
        _linear_backward_lanes(hs, dlogits, grads[4], grads[5])
        for n in range(T):  # dhs = dlogits W_out, as kernels.matmul_small
            for j in range(H):
                for k in range(L):
                    dhs[n, j, k] = zero
            for p in range(V):
                for j in range(H):
                    for k in range(L):
                        dhs[n, j, k] += dlogits[n, p, k] * w_out[p, j, k]
        # ---- backward through time, as kernels.rnn_backward ----
        dh_next[:] = 0
        for t in range(T - 1, -1, -1):
            for j in range(H):
                for k in range(L):
                    dh = dhs[t, j, k] + dh_next[j, k]
                    hv = hs[t, j, k]
                    if relu:
                        dgh[t, j, k] = dh if hv > zero else zero
                    else:
                        dgh[t, j, k] = dh * (one - hv * hv)
            for j in range(H):
                for k in range(L):
                    dh_next[j, k] = zero
            for p in range(H):
                for j in range(H):
                    for k in range(L):
                        dh_next[j, k] += dgh[t, p, k] * w_hh[p, j, k]
        for t in range(1, T):
            for j in range(H):
                for k in range(L):
                    h_prev[t, j, k] = hs[t - 1, j, k]
        _linear_backward_lanes(h_prev, dgh, grads[1], grads[3])
        _linear_backward_shared_x(xs, dgh, grads[0], grads[2])
        a = adam[epoch]
        _adam(w_ih, grads[0], means[0], squares[0], a)
        _adam(w_hh, grads[1], means[1], squares[1], a)
        _adam(b_ih, grads[2], means[2], squares[2], a)
        _adam(b_hh, grads[3], means[3], squares[3], a)
        _adam(w_out, grads[4], means[4], squares[4], a)
        _adam(b_out, grads[5], means[5], squares[5], a)
    return losses.shape[0]


@njit(cache=True, parallel=True)
def train_rnn_lanes(relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
                    losses, correct, probs):
    """Every block (the leading axis of each array) in parallel; returns each block's completed epochs."""
    blocks = w_ih.shape[0]
    done = np.zeros(blocks, np.int64)
    for b in prange(blocks):
        done[b] = train_rnn_block(relu, fast_exp, one, xs, targets, scale, w_ih[b], w_hh[b], b_ih[b], b_hh[b],
                                  w_out[b], b_out[b], adam[b], losses[b], correct[b], probs[b])
    return done
