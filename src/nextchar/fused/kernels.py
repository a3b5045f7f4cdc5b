"""Whole-sequence forward and backward-through-time of one recurrent layer, compiled with numba.

Only the sequential part lives here: per step, the hidden projection ``h_{t-1} W_hh^T`` and the
cell's elementwise math; the input projection ``gi = x W_ih^T + b_ih`` for all steps and the weight
gradients ``dW_hh = Σ_t dgh_t^T h_{t-1}`` are single large matmuls done by torch around these loops.

Shapes: T steps, B streams, H hidden, G = gates * H. ``gi`` (T, B, G); ``w_hh_t`` = W_hh^T (H, G);
``w_hh`` (G, H); ``b_hh`` (G,); states (B, H). Gate order is PyTorch's (lstm i,f,g,o; gru r,z,n).

Every literal is passed in as ``one`` of the arrays' dtype: a bare ``1.0`` is float64 and would
silently promote a float32 kernel. Run with NUMBA_DISABLE_JIT=1 to step through them in Python.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import elements as element
from .elementary import exp_of

SMALL_MATMUL = 16_384
"""Below this many multiply-adds per step, plain loops beat a BLAS call's overhead (the exam: 64)."""


@njit(cache=True)
def matmul_into(a, b, out):
    """out = a @ b for a (n, k), b (k, m): loops when tiny, BLAS (np.dot) otherwise."""
    n, k = a.shape
    m = b.shape[1]
    if n * k * m > SMALL_MATMUL:
        np.dot(a, b, out)
        return
    matmul_small(a, b, out)


@njit(cache=True, inline="always")  # inlined into the per-step loops, where a call would cost more than it
def matmul_small(a, b, out):
    """out = a @ b with plain loops (the order matmul_into's small case has always used)."""
    n, k = a.shape
    m = b.shape[1]
    for i in range(n):
        for j in range(m):
            out[i, j] = 0
        for p in range(k):
            a_ip = a[i, p]
            for j in range(m):
                out[i, j] += a_ip * b[p, j]


@njit(cache=True)
def exp_inplace(x):
    """x[k] = exp(x[k]) over a flat buffer (:func:`exp_of`)."""
    for k in range(x.size):
        x[k] = exp_of(x[k])


# ---- RNN: h_t = act(gi_t + W_hh h_{t-1} + b_hh), act = tanh or relu ----

@njit(cache=True)
def rnn_forward(gi, w_hh_t, b_hh, h0, relu, one, hs):
    """Writes hs (T, B, H). tanh(a) = 2 / (1 + e^{-2a}) - 1, the exponentials taken in one batched pass."""
    T, B, H = hs.shape
    zero = one - one
    gh = np.empty((B, H), gi.dtype)
    e = np.empty(B * H, gi.dtype)
    h = h0.copy()
    small = h.shape[0] * w_hh_t.shape[0] * w_hh_t.shape[1] <= SMALL_MATMUL
    for t in range(T):
        if small:
            matmul_small(h, w_hh_t, gh)
        else:
            matmul_into(h, w_hh_t, gh)  # (B, H) = h_{t-1} W_hh^T
        for b in range(B):
            for j in range(H):
                a = gi[t, b, j] + (gh[b, j] + b_hh[j])
                if relu:
                    h[b, j] = a if a > zero else zero
                else:
                    e[b * H + j] = -(a + a)
        if not relu:
            exp_inplace(e)
            for b in range(B):
                for j in range(H):
                    h[b, j] = element.tanh_from(e[b * H + j], one)
        for b in range(B):  # element by element: a slice assignment costs more than the copy here
            for j in range(H):
                hs[t, b, j] = h[b, j]


@njit(cache=True)
def rnn_backward(dhs, dh_last, hs, w_hh, relu, one, dgh):
    """dhs (T, B, H): ∂L/∂h_t from the layer above; dh_last (B, H): ∂L/∂h_T of the returned state.
    Writes dgh (T, B, H) = ∂L/∂a_t (also ∂L/∂gi_t); returns ∂L/∂h_0."""
    T, B, H = hs.shape
    dh_next = dh_last.copy()
    small = B * w_hh.shape[0] * w_hh.shape[1] <= SMALL_MATMUL
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(H):
                # relu' = [a > 0] = [h > 0];  tanh' = 1 - h^2
                dgh[t, b, j] = element.rnn_back(dhs[t, b, j] + dh_next[b, j], hs[t, b, j], relu, one)
        if small:
            matmul_small(dgh[t], w_hh, dh_next)
        else:
            matmul_into(dgh[t], w_hh, dh_next)  # (B, H) = da_t W_hh
    return dh_next


# ---- LSTM: i,f,g,o = σ,σ,tanh,σ(gi + W_hh h + b_hh);  c' = f c + i g;  h' = o tanh(c') ----

@njit(cache=True)
def lstm_forward(gi, w_hh_t, b_hh, h0, c0, one, hs, cs, tanh_cs, gates):
    """Writes hs, cs, tanh_cs (T, B, H) and gates (T, B, 4H): the activated i, f, g, o, for the backward.

    All five nonlinearities come from exponentials taken in two batched passes per step:
    σ(a) = 1 / (1 + e^{-a}) for i, f, o and tanh(a) = 2 σ(2a) - 1 for g and for c'."""
    T, B, H = hs.shape
    G = 4 * H
    gh = np.empty((B, G), gi.dtype)
    e_gates, e_cell = np.empty(B * G, gi.dtype), np.empty(B * H, gi.dtype)
    h, c = h0.copy(), c0.copy()
    small = h.shape[0] * w_hh_t.shape[0] * w_hh_t.shape[1] <= SMALL_MATMUL
    for t in range(T):
        if small:
            matmul_small(h, w_hh_t, gh)
        else:
            matmul_into(h, w_hh_t, gh)  # (B, 4H) = h_{t-1} W_hh^T
        for b in range(B):
            for g in range(G):
                a = gi[t, b, g] + (gh[b, g] + b_hh[g])
                e_gates[b * G + g] = -(a + a) if 2 * H <= g < 3 * H else -a
        exp_inplace(e_gates)
        for b in range(B):
            for j in range(H):
                i = element.sigmoid_from(e_gates[b * G + j], one)
                f = element.sigmoid_from(e_gates[b * G + H + j], one)
                g = element.tanh_from(e_gates[b * G + 2 * H + j], one)
                o = element.sigmoid_from(e_gates[b * G + 3 * H + j], one)
                c[b, j] = element.lstm_cell(i, f, g, c[b, j])  # c' = f c + i g
                e_cell[b * H + j] = -(c[b, j] + c[b, j])
                gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j], gates[t, b, 3 * H + j] = i, f, g, o
        exp_inplace(e_cell)
        for b in range(B):
            for j in range(H):
                tanh_c = element.tanh_from(e_cell[b * H + j], one)
                h[b, j] = gates[t, b, 3 * H + j] * tanh_c  # h' = o tanh(c')
                hs[t, b, j], cs[t, b, j], tanh_cs[t, b, j] = h[b, j], c[b, j], tanh_c


@njit(cache=True)
def lstm_backward(dhs, dh_last, dc_last, cs, tanh_cs, c0, gates, w_hh, one, dgh):
    """Writes dgh (T, B, 4H) = ∂L/∂(gate pre-activations) (= ∂L/∂gi_t); returns ∂L/∂h_0, ∂L/∂c_0."""
    T, B, H = cs.shape
    dh_next, dc_next = dh_last.copy(), dc_last.copy()
    small = B * w_hh.shape[0] * w_hh.shape[1] <= SMALL_MATMUL
    for t in range(T - 1, -1, -1):
        c_prev = cs[t - 1] if t > 0 else c0
        for b in range(B):
            for j in range(H):
                dgh[t, b, j], dgh[t, b, H + j], dgh[t, b, 2 * H + j], dgh[t, b, 3 * H + j], dc_next[b, j] = \
                    element.lstm_back(dhs[t, b, j] + dh_next[b, j], dc_next[b, j], gates[t, b, j], gates[t, b, H + j],
                                      gates[t, b, 2 * H + j], gates[t, b, 3 * H + j], tanh_cs[t, b, j], c_prev[b, j],
                                      one)
        if small:
            matmul_small(dgh[t], w_hh, dh_next)
        else:
            matmul_into(dgh[t], w_hh, dh_next)  # (B, H) = dgates_t W_hh
    return dh_next, dc_next


# ---- GRU: r,z = σ(gi + gh);  n = tanh(gi_n + r (W_hn h + b_hn));  h' = (1 - z) n + z h ----

@njit(cache=True)
def gru_forward(gi, w_hh_t, b_hh, h0, one, hs, gates):
    """Writes hs (T, B, H) and gates (T, B, 4H): r, z, n and hn = W_hn h_{t-1} + b_hn.
    Two batched exponential passes per step: σ for r and z, then tanh(a) = 2 σ(2a) - 1 for n (needs r)."""
    T, B, H = hs.shape
    gh = np.empty((B, 3 * H), gi.dtype)
    e_rz, e_n = np.empty(B * 2 * H, gi.dtype), np.empty(B * H, gi.dtype)
    h = h0.copy()
    small = h.shape[0] * w_hh_t.shape[0] * w_hh_t.shape[1] <= SMALL_MATMUL
    for t in range(T):
        if small:
            matmul_small(h, w_hh_t, gh)
        else:
            matmul_into(h, w_hh_t, gh)  # (B, 3H)
        for b in range(B):
            for g in range(2 * H):
                e_rz[b * 2 * H + g] = -(gi[t, b, g] + (gh[b, g] + b_hh[g]))
        exp_inplace(e_rz)
        for b in range(B):
            for j in range(H):
                r = element.sigmoid_from(e_rz[b * 2 * H + j], one)
                hn = gh[b, 2 * H + j] + b_hh[2 * H + j]
                a = element.gru_candidate_input(gi[t, b, 2 * H + j], r, hn)
                e_n[b * H + j] = -(a + a)
                gates[t, b, j], gates[t, b, 3 * H + j] = r, hn
        exp_inplace(e_n)
        for b in range(B):
            for j in range(H):
                z = element.sigmoid_from(e_rz[b * 2 * H + H + j], one)
                n = element.tanh_from(e_n[b * H + j], one)
                h[b, j] = element.gru_mix(h[b, j], n, z)
                gates[t, b, H + j], gates[t, b, 2 * H + j] = z, n
                hs[t, b, j] = h[b, j]


@njit(cache=True)
def gru_backward(dhs, dh_last, hs, h0, gates, w_hh, one, dgi, dgh):
    """Writes dgi (T, B, 3H) = ∂L/∂gi_t and dgh (T, B, 3H) = ∂L/∂(W_hh h + b_hh); returns ∂L/∂h_0.
    They differ in the n block: gi_n enters n directly, the hidden part through r * (·)."""
    T, B, H = hs.shape
    dh_next = dh_last.copy()
    through_matmul = np.empty((B, H), hs.dtype)
    small = B * w_hh.shape[0] * w_hh.shape[1] <= SMALL_MATMUL
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        for b in range(B):
            for j in range(H):
                r = gates[t, b, j]
                dr, dz, dn, dh_next[b, j] = element.gru_back(dhs[t, b, j] + dh_next[b, j], r, gates[t, b, H + j],
                                                             gates[t, b, 2 * H + j], gates[t, b, 3 * H + j],
                                                             h_prev[b, j], one)  # dh_next: the direct path dh z
                dgi[t, b, j], dgi[t, b, H + j], dgi[t, b, 2 * H + j] = dr, dz, dn
                dgh[t, b, j], dgh[t, b, H + j], dgh[t, b, 2 * H + j] = dr, dz, dn * r
        if small:
            matmul_small(dgh[t], w_hh, through_matmul)
        else:
            matmul_into(dgh[t], w_hh, through_matmul)  # (B, H)
        for b in range(B):
            for j in range(H):
                dh_next[b, j] += through_matmul[b, j]
    return dh_next


@njit(cache=True)
def lstm_cell_scan(f, ig, c0, cs):
    """The LSTM's cell state over a sequence from its gates: cs[t] = f[t] * cs[t-1] + ig[t], cs[-1] = c0.

    ``f``, ``ig`` (= i * g): (T, H); ``c0``: (H,). The same two roundings as ``cells.lstm_step`` (no fused
    multiply-add), so the result is bit-equal to stepping the cell."""
    previous = c0
    for t in range(f.shape[0]):
        for j in range(f.shape[1]):
            cs[t, j] = f[t, j] * previous[j] + ig[t, j]
        previous = cs[t]
