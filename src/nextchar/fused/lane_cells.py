"""One step of each cell on the lanes layout (``lanes.py``), forward and backward: rnn (tanh, relu), lstm
(i f g o) and gru (r z n), PyTorch's gate order. States live in rows: hs (T + 1, H·L) holds h_t in row t + 1
(row 0: h_{-1} = 0), cs likewise; ``gates`` keeps what BPTT needs; gi[gi_row] (G·L) is step t's input
projection (``workspace.pass_rows`` says when it is made). dgh and dgi are a chunk's rows: step t writes row
``row``. Every literal is built from ``one`` (the arrays' dtype): a bare 1.0 would promote a float32 kernel to
float64.
"""
from __future__ import annotations

from numba import njit

from . import elements as element
from .lanes import INLINE, hidden_matmul, outer_sum


@njit(**INLINE)
def rnn_step(t, gi, gi_row, w_hh_t, b_hh, gh, relu, one, hs, lanes):
    """h_t = act(gi + W_hh h_{t-1} + b_hh), act = relu or tanh (2 σ(2a) - 1), into hs[t + 1]."""
    zero = one - one
    hidden_matmul(t, hs, w_hh_t, gh, lanes)
    for q in range(hs.shape[1]):
        a = gi[gi_row, q] + (gh[0, q] + b_hh[q])
        if relu:
            hs[t + 1, q] = a if a > zero else zero
        else:
            hs[t + 1, q] = element.tanh(a, one)


@njit(**INLINE)
def lstm_step(t, gi, gi_row, w_hh_t, b_hh, gh, one, hs, cs, tanh_cs, gates, lanes):
    """i, f, g, o = σ, σ, tanh, σ of (gi + W_hh h + b_hh); c' = f c + i g; h' = o tanh(c'). cs like hs (row 0:
    c_{-1} = 0)."""
    HL = hs.shape[1]
    hidden_matmul(t, hs, w_hh_t, gh, lanes)
    if len(lanes) == 1:  # one lane: one loop of 4H with a select (loops of H = 4 would hardly vectorize)
        for q in range(4 * HL):
            a = gi[gi_row, q] + (gh[0, q] + b_hh[q])
            if 2 * HL <= q < 3 * HL:
                gates[t, q] = element.tanh(a, one)
            else:
                gates[t, q] = element.sigmoid(a, one)
    else:
        for q in range(2 * HL):  # i and f; each gate's block is a contiguous run of H·L
            gates[t, q] = element.sigmoid(gi[gi_row, q] + (gh[0, q] + b_hh[q]), one)
        for q in range(2 * HL, 3 * HL):  # g (one loop per formula: a select would compute both)
            gates[t, q] = element.tanh(gi[gi_row, q] + (gh[0, q] + b_hh[q]), one)
        for q in range(3 * HL, 4 * HL):  # o
            gates[t, q] = element.sigmoid(gi[gi_row, q] + (gh[0, q] + b_hh[q]), one)
    for q in range(HL):
        cs[t + 1, q], tanh_cs[t, q], hs[t + 1, q] = element.lstm_tail(
            gates[t, q], gates[t, HL + q], gates[t, 2 * HL + q], gates[t, 3 * HL + q], cs[t, q], one)


@njit(**INLINE)
def gru_step(t, gi, gi_row, w_hh_t, b_hh, gh, one, hs, gates, lanes):
    """r, z = σ(gi + gh); n = tanh(gi_n + r hn), hn = W_hn h + b_hn; h' = (h - n) z + n. gates: r, z, n, hn."""
    HL = hs.shape[1]
    hidden_matmul(t, hs, w_hh_t, gh, lanes)
    for q in range(2 * HL):  # r and z
        gates[t, q] = element.sigmoid(gi[gi_row, q] + (gh[0, q] + b_hh[q]), one)
    for q in range(HL):
        gates[t, 3 * HL + q] = gh[0, 2 * HL + q] + b_hh[2 * HL + q]
    # n, then h' in a loop of its own (gru_tail's two halves): in one loop the store into hs[t + 1] beside the
    # reads of hs[t] (one array: LLVM cannot rule out an overlap) kept the tanh scalar; one lane's forward
    # took 104 us an epoch against 89 (bench: the phases of 0cf0d7b and today's, in one process)
    for q in range(HL):
        gates[t, 2 * HL + q] = element.tanh(element.gru_candidate_input(gi[gi_row, 2 * HL + q], gates[t, q],
                                                                         gates[t, 3 * HL + q]), one)
    for q in range(HL):
        hs[t + 1, q] = element.gru_mix(hs[t, q], gates[t, 2 * HL + q], gates[t, HL + q])


@njit(**INLINE)
def rnn_step_back(t, row, dhs, dh_next, hs, w_hh, relu, one, dgh, lanes):
    """dgh[row] = ∂L/∂(pre-activation) at step t (row: t's place in the chunk's dgh); dh_next = its gradient
    into h_{t-1}. hs (T + 1, H·L): h_t in row t + 1."""
    zero = one - one
    for q in range(hs.shape[1]):
        dgh[row, q] = element.rnn_back(dhs[t, q] + dh_next[0, q], hs[t + 1, q], relu, one)
        dh_next[0, q] = zero
    outer_sum(dgh, row, w_hh, dh_next, 0, lanes)


@njit(**INLINE)
def lstm_step_back(t, row, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh, lanes):
    """cs (T + 1, H·L): c_t in row t + 1, c_{-1} = 0 in row 0."""
    HL = cs.shape[1]
    zero = one - one
    for q in range(HL):
        dgh[row, q], dgh[row, HL + q], dgh[row, 2 * HL + q], dgh[row, 3 * HL + q], dc_next[0, q] = element.lstm_back(
            dhs[t, q] + dh_next[0, q], dc_next[0, q], gates[t, q], gates[t, HL + q], gates[t, 2 * HL + q],
            gates[t, 3 * HL + q], tanh_cs[t, q], cs[t, q], one)
        dh_next[0, q] = zero
    outer_sum(dgh, row, w_hh, dh_next, 0, lanes)


@njit(**INLINE)
def gru_step_back(t, row, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, direct, lanes):
    """dgi and dgh differ in the n block: gi_n enters n directly, the hidden part through r * (·). hs (T + 1,
    H·L): h_{t-1} in row t."""
    HL = hs.shape[1]
    zero = one - one
    for q in range(HL):
        r = gates[t, q]
        dr, dz, dn, direct[0, q] = element.gru_back(dhs[t, q] + dh_next[0, q], r, gates[t, HL + q],
                                                    gates[t, 2 * HL + q], gates[t, 3 * HL + q], hs[t, q], one)
        dgi[row, q], dgi[row, HL + q], dgi[row, 2 * HL + q] = dr, dz, dn
        dgh[row, q], dgh[row, HL + q], dgh[row, 2 * HL + q] = dr, dz, dn * r  # gh_n enters through r (·)
        dh_next[0, q] = zero
    outer_sum(dgh, row, w_hh, dh_next, 0, lanes)
    for q in range(HL):
        dh_next[0, q] = direct[0, q] + dh_next[0, q]
