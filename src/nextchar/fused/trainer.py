"""The one compiled trainer of the exam's protocol (input projection, recurrence, head, softmax cross-entropy,
BPTT, Adam), for rnn (tanh, relu), lstm and gru, with the model as the innermost axis: SIMD lanes over models.

Every array has the model last (``w_hh`` (G, H, L), ``hs`` (T, H, L), ...), so each loop's innermost step
over the L models is contiguous and LLVM turns it into vector instructions: one instruction advances
several models. Nothing crosses lanes, so each model's arithmetic is the same whatever L is: the compiled
engine (``compiled.compiled_fit``) is this trainer with one lane, and the many engine (``many.fit_many``)
runs blocks of :data:`LANES` models in parallel over the cores (:func:`train_lanes`) — each model bit-equal
to training it alone.

Shapes per block: I inputs (one-hot, shared by all models), V outputs, H hidden, G = H (rnn), 4H (lstm:
i f g o) or 3H (gru: r z n), T steps, E epochs, L lanes. ``family``: 0 rnn, 1 lstm, 2 gru. Every literal
is built from ``one`` (the arrays' dtype): a bare 1.0 would promote a float32 kernel to float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernels import exp_inplace

LANES = 32
"""Models per block: a few vector registers wide; measured fastest of 16, 32, 64 and 128 here (K = 256)."""


@njit(cache=True, inline="always")
def _linear(x, w, b, out):
    """out (N, G, L) = b + Σ_i x[n, i] w[g, i]; x (N, I, L)."""
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
def _linear_backward(x, dout, dw, db):
    """dw (G, I, L) = Σ_n dout[n, g] x[n, i]; db (G, L) = Σ_n dout[n, g]."""
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
def _hidden_matmul(h, w_hh, gh, zero):
    """gh (G, L) = W_hh h: Σ_p h[p] w_hh[g, p] in p's order."""
    G, H, L = w_hh.shape
    for g in range(G):
        for k in range(L):
            gh[g, k] = zero
        for p in range(H):
            for k in range(L):
                gh[g, k] += h[p, k] * w_hh[g, p, k]


@njit(cache=True, inline="always")
def _rnn_step(t, gi, w_hh, b_hh, h, gh, e, bits, relu, one, fast_exp, hs):
    """h' = act(gi + W_hh h + b_hh), act = relu or tanh (2 σ(2a) - 1)."""
    G, H, L = w_hh.shape
    zero, two = one - one, one + one
    _hidden_matmul(h, w_hh, gh, one - one)
    for j in range(H):
        for k in range(L):
            a = gi[t, j, k] + (gh[j, k] + b_hh[j, k])
            if relu:
                h[j, k] = a if a > zero else zero
            else:
                e[j, k] = -(a + a)
    if not relu:
        exp_inplace(e[:H].reshape(-1), bits, fast_exp)
        for j in range(H):
            for k in range(L):
                h[j, k] = two / (one + e[j, k]) - one
    for j in range(H):
        for k in range(L):
            hs[t, j, k] = h[j, k]


@njit(cache=True, inline="always")
def _lstm_step(t, gi, w_hh, b_hh, h, c, gh, e, e_cell, bits, bits_cell, one, fast_exp, hs, cs, tanh_cs, gates):
    """i, f, g, o = σ, σ, tanh, σ of (gi + W_hh h + b_hh); c' = f c + i g; h' = o tanh(c')."""
    G, H, L = w_hh.shape
    two = one + one
    _hidden_matmul(h, w_hh, gh, one - one)
    for g in range(G):
        tanh_gate = 2 * H <= g < 3 * H
        for k in range(L):
            a = gi[t, g, k] + (gh[g, k] + b_hh[g, k])
            e[g, k] = -(a + a) if tanh_gate else -a
    exp_inplace(e.reshape(-1), bits, fast_exp)
    for j in range(H):
        for k in range(L):
            i = one / (one + e[j, k])
            f = one / (one + e[H + j, k])
            g = two / (one + e[2 * H + j, k]) - one
            o = one / (one + e[3 * H + j, k])
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
def _gru_step(t, gi, w_hh, b_hh, h, gh, e, e_n, bits, bits_n, one, fast_exp, hs, gates):
    """r, z = σ(gi + gh); n = tanh(gi_n + r hn), hn = W_hn h + b_hn; h' = (h - n) z + n. gates: r, z, n, hn."""
    G, H, L = w_hh.shape
    two = one + one
    _hidden_matmul(h, w_hh, gh, one - one)
    for g in range(2 * H):
        for k in range(L):
            e[g, k] = -(gi[t, g, k] + (gh[g, k] + b_hh[g, k]))
    exp_inplace(e[:2 * H].reshape(-1), bits[:2 * H * L], fast_exp)
    for j in range(H):
        for k in range(L):
            r = one / (one + e[j, k])
            hn = gh[2 * H + j, k] + b_hh[2 * H + j, k]
            a = gi[t, 2 * H + j, k] + r * hn
            e_n[j, k] = -(a + a)
            gates[t, j, k], gates[t, 3 * H + j, k] = r, hn
    exp_inplace(e_n.reshape(-1), bits_n, fast_exp)
    for j in range(H):
        for k in range(L):
            z = one / (one + e[H + j, k])
            n = two / (one + e_n[j, k]) - one
            h[j, k] = (h[j, k] - n) * z + n
            gates[t, H + j, k], gates[t, 2 * H + j, k] = z, n
            hs[t, j, k] = h[j, k]


@njit(cache=True, inline="always")
def _through_hidden(t, dgh, w_hh, dh_next, zero):
    """dh_next (H, L) = Σ_p dgh[t, p] w_hh[p, :]: the gradient into h_{t-1} through W_hh."""
    G, H, L = w_hh.shape
    for j in range(H):
        for k in range(L):
            dh_next[j, k] = zero
    for p in range(G):
        for j in range(H):
            for k in range(L):
                dh_next[j, k] += dgh[t, p, k] * w_hh[p, j, k]


@njit(cache=True, inline="always")
def _rnn_step_back(t, dhs, dh_next, hs, w_hh, relu, one, dgh):
    H = hs.shape[1]
    zero = one - one
    for j in range(H):
        for k in range(hs.shape[2]):
            dh = dhs[t, j, k] + dh_next[j, k]
            hv = hs[t, j, k]
            if relu:
                dgh[t, j, k] = dh if hv > zero else zero
            else:
                dgh[t, j, k] = dh * (one - hv * hv)
    _through_hidden(t, dgh, w_hh, dh_next, one - one)


@njit(cache=True, inline="always")
def _lstm_step_back(t, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh):
    """c_0 = 0."""
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
    _through_hidden(t, dgh, w_hh, dh_next, one - one)


@njit(cache=True, inline="always")
def _gru_step_back(t, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, direct):
    """dgi and dgh differ in the n block: gi_n enters n directly, the hidden part through r * (·). h_0 = 0."""
    G, H, L = w_hh.shape
    for j in range(H):
        for k in range(L):
            r, z, n, hn = gates[t, j, k], gates[t, H + j, k], gates[t, 2 * H + j, k], gates[t, 3 * H + j, k]
            dh = dhs[t, j, k] + dh_next[j, k]
            h_prev = hs[t - 1, j, k] if t > 0 else one - one
            dn = dh * (one - z) * (one - n * n)  # ∂L/∂(pre-tanh n)
            dr = dn * hn * r * (one - r)
            dz = dh * (h_prev - n) * z * (one - z)
            dgi[t, j, k], dgi[t, H + j, k], dgi[t, 2 * H + j, k] = dr, dz, dn
            dgh[t, j, k], dgh[t, H + j, k], dgh[t, 2 * H + j, k] = dr, dz, dn * r
            direct[j, k] = dh * z  # the direct path h' = ... + z h
    _through_hidden(t, dgh, w_hh, dh_next, one - one)
    for j in range(H):
        for k in range(L):
            dh_next[j, k] = direct[j, k] + dh_next[j, k]


@njit(cache=True, inline="always")
def _head_loss(logits, targets, best_target, mass, scale, fast_exp, one, probs, dlogits, tops, bits, right,
               total):
    """Softmax cross-entropy of logits (T, V, L) against the shared targets (T, V): writes probs, dlogits
    (∂ loss / ∂ logits, times ``scale`` = 1/T), each lane's summed loss ``total`` and correct count ``right``."""
    T, V, L = logits.shape
    zero = one - one
    best, top = np.empty(L, np.int64), np.empty(L, logits.dtype)
    denom, log_denom = np.empty(L, logits.dtype), np.empty(L, logits.dtype)
    right[:] = 0
    for n in range(T):
        for k in range(L):
            top[k], best[k] = logits[n, 0, k], 0
        for v in range(V):
            for k in range(L):
                if logits[n, v, k] > top[k]:
                    top[k], best[k] = logits[n, v, k], v
        for v in range(V):
            for k in range(L):
                probs[n, v, k] = logits[n, v, k] - top[k]
        for k in range(L):
            tops[n, k] = top[k]
            right[k] += best[k] == best_target[n]
    exp_inplace(probs.reshape(-1), bits, fast_exp)
    total[:] = 0.0
    for n in range(T):
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
            for k in range(L):
                dlogits[n, v, k] = (probs[n, v, k] * mass[n] - targets[n, v]) * scale


@njit(cache=True, inline="always")
def _into_hidden(dlogits, w_out, dhs, zero):
    """dhs (T, H, L) = dlogits W_out."""
    T, V, L = dlogits.shape
    H = w_out.shape[1]
    for n in range(T):
        for j in range(H):
            for k in range(L):
                dhs[n, j, k] = zero
        for p in range(V):
            for j in range(H):
                for k in range(L):
                    dhs[n, j, k] += dlogits[n, p, k] * w_out[p, j, k]


@njit(cache=True, inline="always")
def _adam(param, grad, m, v, a):
    """torch's Adam rule per element; a (6, L): each lane's scalars (compiled.adam_scalars)."""
    p, g_, mm, vv = param.reshape(-1, param.shape[-1]), grad.reshape(-1, grad.shape[-1]), \
        m.reshape(-1, m.shape[-1]), v.reshape(-1, v.shape[-1])
    for r in range(p.shape[0]):
        for k in range(p.shape[1]):
            g = g_[r, k]
            mm[r, k] += a[0, k] * (g - mm[r, k])
            vv[r, k] = vv[r, k] * a[1, k] + a[2, k] * (g * g)
            p[r, k] -= a[3, k] * (mm[r, k] / (np.sqrt(vv[r, k]) / a[4, k] + a[5, k]))


@njit(cache=True)
def _shared_targets(targets):
    """The targets are shared by every lane: each position's argmax and mass, once."""
    T, V = targets.shape
    best, mass = np.zeros(T, np.int64), np.empty(T, targets.dtype)
    for n in range(T):
        s = targets[n, 0] - targets[n, 0]
        for v in range(V):
            if targets[n, v] > targets[n, best[n]]:
                best[n] = v
            s += targets[n, v]
        mass[n] = s
    return best, mass


@njit(cache=True)
def _forward(family, relu, fast_exp, one, gi, w_hh, b_hh, h, c, gh, e, e2, bits, bits2, hs, cs, tanh_cs, gates):
    """The recurrence over every step from a zero state (the family branch, once)."""
    h[:] = 0
    c[:] = 0
    for t in range(gi.shape[0]):
        if family == 1:
            _lstm_step(t, gi, w_hh, b_hh, h, c, gh, e, e2, bits, bits2, one, fast_exp, hs, cs, tanh_cs, gates)
        elif family == 2:
            _gru_step(t, gi, w_hh, b_hh, h, gh, e, e2, bits, bits2, one, fast_exp, hs, gates)
        else:
            _rnn_step(t, gi, w_hh, b_hh, h, gh, e, bits, relu, one, fast_exp, hs)


@njit(cache=True)
def _backward(family, relu, one, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next, dc_next, dgh, dgi):
    """BPTT from the last step: dgh = ∂L/∂(W_hh h + b_hh); dgi = ∂L/∂gi, which differs for the gru's n
    (for rnn and lstm the caller uses dgh for both)."""
    dh_next[:] = 0
    dc_next[:] = 0
    for t in range(dhs.shape[0] - 1, -1, -1):
        if family == 1:
            _lstm_step_back(t, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh)
        elif family == 2:
            _gru_step_back(t, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, dc_next)
        else:
            _rnn_step_back(t, dhs, dh_next, hs, w_hh, relu, one, dgh)


@njit(cache=True)
def _gradients(family, x_lanes, hs, dgh, dgi, dlogits, h_prev, grads):
    """The weight gradients of one epoch: head, hidden and input projections."""
    _linear_backward(hs, dlogits, grads[4], grads[5])
    for t in range(1, hs.shape[0]):
        h_prev[t] = hs[t - 1]  # h_{t-1}, with h_{-1} = 0
    _linear_backward(h_prev, dgh, grads[1], grads[3])
    _linear_backward(x_lanes, dgi if family == 2 else dgh, grads[0], grads[2])


@njit(cache=True)
def _adam_all(params, grads, means, squares, a):
    """Each of the six parameters (a tuple of mixed ranks: indexed with constants)."""
    _adam(params[0], grads[0], means[0], squares[0], a)
    _adam(params[1], grads[1], means[1], squares[1], a)
    _adam(params[2], grads[2], means[2], squares[2], a)
    _adam(params[3], grads[3], means[3], squares[3], a)
    _adam(params[4], grads[4], means[4], squares[4], a)
    _adam(params[5], grads[5], means[5], squares[5], a)


@njit(cache=True)
def train_block(family, relu, fast_exp, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam,
                losses, correct, probs):
    """Every epoch of L models in place. w_ih (G, I, L), w_hh (G, H, L), b_ih/b_hh (G, L), w_out (V, H, L),
    b_out (V, L), adam (E, 6, L), losses/correct (E, L), probs (T, V, L): the last forward pass. Returns the
    epochs every lane completed (fewer than E when a loss is not finite: no step is taken then)."""
    T, I = xs.shape
    G, H, L = w_hh.shape
    V, dtype = w_out.shape[0], xs.dtype
    params = (w_ih, w_hh, b_ih, b_hh, w_out, b_out)
    grads = (np.empty_like(w_ih), np.empty_like(w_hh), np.empty_like(b_ih), np.empty_like(b_hh),
             np.empty_like(w_out), np.empty_like(b_out))
    means = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh),
             np.zeros_like(w_out), np.zeros_like(b_out))
    squares = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh),
               np.zeros_like(w_out), np.zeros_like(b_out))
    x_lanes = np.empty((T, I, L), dtype)  # the shared one-hot input, once per lane
    for n in range(T):
        for i in range(I):
            x_lanes[n, i, :] = xs[n, i]
    best_target, mass = _shared_targets(targets)
    gi, gh, e, bits = np.empty((T, G, L), dtype), np.empty((G, L), dtype), np.empty((G, L), dtype), \
        np.empty(G * L, np.int32)
    h, c, e2, bits2 = np.empty((H, L), dtype), np.empty((H, L), dtype), np.empty((H, L), dtype), \
        np.empty(H * L, np.int32)
    hs, cs, tanh_cs = np.empty((T, H, L), dtype), np.empty((T, H, L), dtype), np.empty((T, H, L), dtype)
    gates, dgh, dgi = np.empty((T, 4 * H, L), dtype), np.empty((T, G, L), dtype), np.empty((T, G, L), dtype)
    logits, dlogits, dhs = np.empty((T, V, L), dtype), np.empty((T, V, L), dtype), np.empty((T, H, L), dtype)
    tops, bits_out, h_prev = np.empty((T, L), dtype), np.empty(T * V * L, np.int32), np.zeros((T, H, L), dtype)
    right, total = np.empty(L, np.int64), np.empty(L, np.float64)
    for epoch in range(losses.shape[0]):
        _linear(x_lanes, w_ih, b_ih, gi)
        _forward(family, relu, fast_exp, one, gi, w_hh, b_hh, h, c, gh, e, e2, bits, bits2, hs, cs, tanh_cs, gates)
        _linear(hs, w_out, b_out, logits)
        _head_loss(logits, targets, best_target, mass, scale, fast_exp, one, probs, dlogits, tops, bits_out, right,
                   total)
        finite = True
        for k in range(L):
            losses[epoch, k], correct[epoch, k] = total[k] / T, right[k]
            finite = finite and np.isfinite(losses[epoch, k])
        if not finite:
            return epoch
        _into_hidden(dlogits, w_out, dhs, one - one)
        _backward(family, relu, one, dhs, w_hh, hs, cs, tanh_cs, gates, h, c, dgh, dgi)
        _gradients(family, x_lanes, hs, dgh, dgi, dlogits, h_prev, grads)
        _adam_all(params, grads, means, squares, adam[epoch])
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
