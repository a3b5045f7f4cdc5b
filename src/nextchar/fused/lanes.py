"""The many engine's RNN and LSTM kernel with the model as the innermost axis: SIMD lanes over models.

One compiled call trains L models side by side: every array has the model last (``w_hh`` (G, H, L),
``hs`` (T, H, L), ...), so each loop's innermost step over the L models is contiguous and LLVM turns it
into vector instructions: one instruction advances several models. Blocks of L models run in parallel
over the cores (``prange``). Each model's operations are exactly those of ``compiled.train_epochs`` in
the same order (the input projection, the recurrence, the head, softmax cross-entropy, BPTT, Adam), so
each model's result is bit-equal to training it alone with the compiled engine.

Shapes per block: I inputs (one-hot, shared by all models), V outputs, H hidden, G = H (rnn) or 4H (lstm),
T steps, E epochs, L lanes (models).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernels import exp_inplace

LANES = 32
"""Models per block: a few vector registers wide; measured fastest of 16, 32, 64 and 128 here (K = 256)."""


@njit(cache=True, inline="always")
def _linear_lanes(x, w, b, out):
    """out (N, G, L) = b + Σ_i x[n, i] w[g, i], in compiled.linear_forward's order; x (N, I, L)."""
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
def _linear_backward_lanes(x, dout, dw, db):
    """dw (G, I, L) = Σ_n dout[n, g] x[n, i]; db (G, L) = Σ_n dout[n, g], in compiled.linear_backward's order."""
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


@njit(cache=True, inline="always")
def _lstm_forward(t, gi, w_hh, b_hh, h, c, gh, e_gates, e_cell, bits_gates, bits_cell, one, fast_exp, hs, cs,
                  tanh_cs, gates):
    """One step of kernels.lstm_forward for L lanes: i, f, g, o = σ, σ, tanh, σ; c' = f c + i g; h' = o tanh(c')."""
    G, H, L = w_hh.shape
    two = one + one
    for g in range(G):
        for k in range(L):
            gh[g, k] = one - one
        for p in range(H):
            for k in range(L):
                gh[g, k] += h[p, k] * w_hh[g, p, k]
    for g in range(G):
        tanh_gate = 2 * H <= g < 3 * H
        for k in range(L):
            a = gi[t, g, k] + (gh[g, k] + b_hh[g, k])
            e_gates[g, k] = -(a + a) if tanh_gate else -a
    exp_inplace(e_gates.reshape(-1), bits_gates, fast_exp)
    for j in range(H):
        for k in range(L):
            i = one / (one + e_gates[j, k])
            f = one / (one + e_gates[H + j, k])
            g = two / (one + e_gates[2 * H + j, k]) - one
            o = one / (one + e_gates[3 * H + j, k])
            c[j, k] = f * c[j, k] + i * g
            e_cell[j, k] = -(c[j, k] + c[j, k])
            gates[t, j, k], gates[t, H + j, k], gates[t, 2 * H + j, k], gates[t, 3 * H + j, k] = i, f, g, o
    exp_inplace(e_cell.reshape(-1), bits_cell, fast_exp)
    for j in range(H):
        for k in range(L):
            tanh_c = two / (one + e_cell[j, k]) - one
            h[j, k] = gates[t, 3 * H + j, k] * tanh_c
            hs[t, j, k], cs[t, j, k], tanh_cs[t, j, k] = h[j, k], c[j, k], tanh_c


@njit(cache=True, inline="always")
def _lstm_backward(t, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh):
    """One step of kernels.lstm_backward for L lanes (c_0 = 0)."""
    G, H, L = w_hh.shape
    for j in range(H):
        for k in range(L):
            i, f = gates[t, j, k], gates[t, H + j, k]
            g, o = gates[t, 2 * H + j, k], gates[t, 3 * H + j, k]
            dh = dhs[t, j, k] + dh_next[j, k]
            tanh_c = tanh_cs[t, j, k]
            c_prev = cs[t - 1, j, k] if t > 0 else one - one
            dc = dc_next[j, k] + dh * o * (one - tanh_c * tanh_c)
            dgh[t, j, k] = dc * g * i * (one - i)
            dgh[t, H + j, k] = dc * c_prev * f * (one - f)
            dgh[t, 2 * H + j, k] = dc * i * (one - g * g)
            dgh[t, 3 * H + j, k] = dh * tanh_c * o * (one - o)
            dc_next[j, k] = dc * f
    for j in range(H):
        for k in range(L):
            dh_next[j, k] = one - one
    for p in range(G):
        for j in range(H):
            for k in range(L):
                dh_next[j, k] += dgh[t, p, k] * w_hh[p, j, k]


@njit(cache=True)
def train_block(family, relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
                losses, correct, probs):
    """One block of L models, every epoch: the lanes version of compiled.train_epochs (family 0 rnn, 1 lstm).
    w_ih (G, I, L), w_hh (G, H, L), b_ih/b_hh (G, L), w_out (V, H, L), b_out (V, L), adam (E, 6, L),
    losses/correct (E, L), probs (T, V, L). Returns the epochs every lane completed."""
    T, I = xs.shape
    G, H, L = w_hh.shape
    V = w_out.shape[0]
    dtype = xs.dtype
    zero, two = one - one, one + one
    gi, hs = np.empty((T, G, L), dtype), np.empty((T, H, L), dtype)
    logits, dlogits = np.empty((T, V, L), dtype), np.empty((T, V, L), dtype)
    dhs, dgh, h_prev = np.empty((T, H, L), dtype), np.empty((T, G, L), dtype), np.zeros((T, H, L), dtype)
    h, gh, e = np.empty((H, L), dtype), np.empty((G, L), dtype), np.empty((G, L), dtype)
    bits, bits_out = np.empty(G * L, np.int32), np.empty(T * V * L, np.int32)
    tops, dh_next, dc_next = np.empty((T, L), dtype), np.empty((H, L), dtype), np.empty((H, L), dtype)
    c, e_cell, bits_cell = np.empty((H, L), dtype), np.empty((H, L), dtype), np.empty(H * L, np.int32)
    cs, tanh_cs = np.empty((T, H, L), dtype), np.empty((T, H, L), dtype)
    gates = np.empty((T, G, L), dtype)
    grads = (np.empty_like(w_ih), np.empty_like(w_hh), np.empty_like(b_ih), np.empty_like(b_hh),
             np.empty_like(w_out), np.empty_like(b_out))
    means = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh),
             np.zeros_like(w_out), np.zeros_like(b_out))
    squares = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh),
               np.zeros_like(w_out), np.zeros_like(b_out))
    x_lanes = np.empty((T, I, L), dtype)  # the shared one-hot input, once per lane
    for n in range(T):
        for i in range(I):
            for k in range(L):
                x_lanes[n, i, k] = xs[n, i]
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
        _linear_lanes(x_lanes, w_ih, b_ih, gi)
        # ---- recurrence: as kernels.rnn_forward / lstm_forward ----
        h[:] = 0
        c[:] = 0
        for t in range(T):
            if family == 1:
                _lstm_forward(t, gi, w_hh, b_hh, h, c, gh, e, e_cell, bits, bits_cell, one, fast_exp, hs, cs, tanh_cs,
                              gates)
                continue
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
        # ---- backward through time, as kernels.rnn_backward / lstm_backward ----
        dh_next[:] = 0
        dc_next[:] = 0
        for t in range(T - 1, -1, -1):
            if family == 1:
                _lstm_backward(t, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh)
                continue
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
        _linear_backward_lanes(x_lanes, dgh, grads[0], grads[2])
        a = adam[epoch]
        _adam(w_ih, grads[0], means[0], squares[0], a)
        _adam(w_hh, grads[1], means[1], squares[1], a)
        _adam(b_ih, grads[2], means[2], squares[2], a)
        _adam(b_hh, grads[3], means[3], squares[3], a)
        _adam(w_out, grads[4], means[4], squares[4], a)
        _adam(b_out, grads[5], means[5], squares[5], a)
    return losses.shape[0]


@njit(cache=True, parallel=True)
def train_lanes(family, relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
                losses, correct, probs):
    """Every block (the leading axis of each array) in parallel; returns each block's completed epochs."""
    blocks = w_ih.shape[0]
    done = np.zeros(blocks, np.int64)
    for b in prange(blocks):
        done[b] = train_block(family, relu, fast_exp, one, xs, targets, scale, w_ih[b], w_hh[b], b_ih[b], b_hh[b],
                              w_out[b], b_out[b], adam[b], losses[b], correct[b], probs[b])
    return done
