"""The one compiled trainer of the exam's protocol (input projection, recurrence, head, softmax cross-entropy,
BPTT, Adam), for rnn (tanh, relu), lstm and gru, with the model as the innermost axis: SIMD lanes over models.

The compiled engine (``compiled.compiled_fit``) is this trainer with one lane, on the model's own parameter
memory, and the many engine (``sequence.many.fit_many``) runs blocks of :data:`LANES` models in parallel over the
cores (:func:`train_lanes`): each model bit-equal to training it alone (the layout and why: ``lanes.py``;
the cells: ``lane_cells.py``; the loss: ``lane_loss.py``, and for one lane ``step_head.py``). An epoch is a
few phases, each over a chunk of steps (:func:`pass_rows`, :data:`BPTT_CHUNK`): forward with the head behind
it, then backward with the weight gradients behind it, then Adam. The phases compile with their array
arguments marked distinct (:class:`~nextchar.fused.lanes.DistinctArrays`), so no inner loop checks for overlap.

Shapes per block: I inputs (shared by all models), V outputs, H hidden, G = H (rnn), 4H (lstm) or 3H (gru),
T steps, E epochs, L lanes. ``family``: 0 rnn, 1 lstm, 2 gru.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .lane_cells import gru_step, gru_step_back, lstm_step, lstm_step_back, rnn_step, rnn_step_back
from .lane_loss import head_loss, into_hidden
from .lanes import (
    COMPILED,
    PHASE,
    adam,
    lane_tag,
    project,
    project_shared,
    transpose,
    weight_grads,
    weight_grads_shared,
    width,
)
from .step_head import step_head

__all__ = ["LANES", "lane_tag", "train_block", "train_lanes"]

LANES = 32
"""Models per block of the many engine (measured fastest of 8, 16, 32 and 64 here, K = 256)."""
CHUNK = 32
"""Steps per pass of the head behind the recurrence (many lanes): it reads a chunk's states while they are in
cache, and the logits and ∂loss/∂logits are never whole (T, V·L) buffers. One lane runs the head in one pass."""
BPTT_CHUNK = 128
"""Steps per pass of the weight gradients behind BPTT, at every width (the sums' order depends on it, so the
widths agree bit for bit): ∂L/∂gates is (BPTT_CHUNK, G·L), not (T, G·L) (measured: 32 and 128 alike at 32
lanes, 128 faster for one lane: fewer calls)."""


@njit(**COMPILED)
def pass_rows(L, T):
    """Steps per head pass and per input projection pass at L lanes. One lane: the head in one pass and the
    projections all ahead of the recurrence (chunks would only add calls and short loops); many: the head a
    chunk behind, each projection just before its step (one row, in L1)."""
    return (T, T) if L == 1 else (CHUNK, 1)


@njit(**COMPILED)
def _shared_targets(targets):
    """The targets are shared by every lane: each position's argmax and mass, and the targets as (V, T) for one
    lane's head (``step_head``), once."""
    T, V = targets.shape
    best, mass, target_t = np.zeros(T, np.int32), np.empty(T, targets.dtype), np.empty((V, T), targets.dtype)
    for n in range(T):
        s = targets[n, 0] - targets[n, 0]
        for v in range(V):
            if targets[n, v] > targets[n, best[n]]:
                best[n] = v
            s += targets[n, v]
        mass[n] = s
    transpose(targets, target_t, (1,))
    return best, mass, target_t


@njit(**PHASE)
def _project(xs, n0, rows, w_ih_t, b_ih, gi):
    """The input projections of rows steps from n0 (a call of its own: inlined into the recurrence's loop, it
    made one model's forward 1.8x slower)."""
    project_shared(xs, n0, rows, w_ih_t, b_ih, gi)


@njit(**PHASE)
def _forward(family, relu, one, t0, t1, xs, w_ih_t, b_ih, gi, w_hh_t, b_hh, gh, hs, cs, tanh_cs, gates, lanes):
    """The recurrence over steps t0..t1 - 1, into hs[t0 + 1 : t1 + 1] (and cs; the family branch, once)."""
    for s0 in range(t0, t1, gi.shape[0]):  # the input projections, gi.shape[0] steps at a time
        s1 = min(t1, s0 + gi.shape[0])
        _project(xs, s0, s1 - s0, w_ih_t, b_ih, gi)
        for t in range(s0, s1):
            row = t - s0  # step t's row of gi
            if family == 1:
                lstm_step(t, gi, row, w_hh_t, b_hh, gh, one, hs, cs, tanh_cs, gates, lanes)
            elif family == 2:
                gru_step(t, gi, row, w_hh_t, b_hh, gh, one, hs, gates, lanes)
            else:
                rnn_step(t, gi, row, w_hh_t, b_hh, gh, relu, one, hs, lanes)


@njit(**PHASE)
def _head(n0, n1, hs, w_out, w_out_t, b_out, targets, target_t, best_target, mass, scale, logits, probs, dlogits,
          tops, denom, best, right, total, dhs, d_w_out, d_b_out, lanes):
    """The head over steps n0..n1 - 1, while their states are in cache: logits, softmax cross-entropy (loss
    added, probs, dlogits), dhs = dlogits W_out and the head's weight gradients (added; rows in order, so the
    chunks sum as one pass would). logits, dlogits and tops hold one chunk."""
    rows, h = n1 - n0, hs[n0 + 1:n1 + 1]
    if len(lanes) == 1:  # the steps as the vector axis (a row's 7 logits would be scalar code)
        step_head(h, w_out, b_out, targets[n0:n1], target_t[:, n0:n1], best_target[n0:n1], mass[n0:n1], scale,
                  probs[n0:n1], dlogits[:rows], dhs[n0:n1], right, total, d_w_out, d_b_out, lanes)
        return
    logit, dlogit, top = logits[:rows], dlogits[:rows], tops[:rows]
    project(h, w_out, w_out_t, b_out, logit, lanes)
    head_loss(logit, targets[n0:n1], best_target[n0:n1], mass[n0:n1], scale, probs[n0:n1], dlogit, top, denom, best,
              right, total, lanes)
    into_hidden(dlogit, w_out, dhs[n0:n1], lanes)
    weight_grads(h, dlogit, d_w_out, d_b_out, lanes)


@njit(**PHASE)
def _backward(family, relu, one, t0, t1, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next, dc_next, dgh, dgi, lanes):
    """BPTT over steps t1 - 1 down to t0 (dh_next, dc_next carry on from the chunk after): dgh[t - t0] =
    ∂L/∂(W_hh h + b_hh); dgi = ∂L/∂gi, which differs for the gru's n (for rnn and lstm the caller uses dgh)."""
    for t in range(t1 - 1, t0 - 1, -1):
        if family == 1:
            lstm_step_back(t, t - t0, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh, lanes)
        elif family == 2:
            gru_step_back(t, t - t0, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, dc_next, lanes)
        else:
            rnn_step_back(t, t - t0, dhs, dh_next, hs, w_hh, relu, one, dgh, lanes)


@njit(**PHASE)
def _gradients(family, t0, t1, xs, hs, dgh, dgi, grads, lanes):
    """The hidden and input projections' weight gradients of steps t0..t1 - 1, added to the later chunks'
    (the chunks from the last, as BPTT makes them, each chunk's rows in order: a reversed view would keep
    the loops scalar); hs (T + 1, H·L): h_{t-1} in row t."""
    rows = t1 - t0
    weight_grads(hs[t0:t1], dgh[:rows], grads[1], grads[3], lanes)
    weight_grads_shared(xs[t0:t1], (dgi if family == 2 else dgh)[:rows], grads[0], grads[2], lanes)


@njit(**COMPILED)
def _adam_all(params, grads, means, squares, a, lanes):
    """Each of the six parameters (a tuple of mixed ranks: indexed with constants)."""
    adam(params[0], grads[0], means[0], squares[0], a, lanes)
    adam(params[1], grads[1], means[1], squares[1], a, lanes)
    adam(params[2], grads[2], means[2], squares[2], a, lanes)
    adam(params[3], grads[3], means[3], squares[3], a, lanes)
    adam(params[4], grads[4], means[4], squares[4], a, lanes)
    adam(params[5], grads[5], means[5], squares[5], a, lanes)


@njit(**COMPILED)
def _zeros_like_all(arrays):
    return (np.zeros_like(arrays[0]), np.zeros_like(arrays[1]), np.zeros_like(arrays[2]),
            np.zeros_like(arrays[3]), np.zeros_like(arrays[4]), np.zeros_like(arrays[5]))


@njit(**COMPILED)
def _zero_all(arrays):
    """Each of the six gradients (a tuple of mixed ranks: indexed with constants)."""
    arrays[0][:], arrays[1][:], arrays[2][:], arrays[3][:], arrays[4][:], arrays[5][:] = 0, 0, 0, 0, 0, 0


@njit(**COMPILED)
def _epoch_losses(epoch, total, right, T, losses, correct):
    """Record each lane's mean loss and correct count; False when a loss is not finite."""
    finite = True
    for k in range(total.shape[0]):
        losses[epoch, k], correct[epoch, k] = total[k] / T, right[k]
        finite = finite and np.isfinite(losses[epoch, k])
    return finite


@njit(**COMPILED)
def train_block(lanes, family, relu, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam, losses,
                correct, probs):
    """Every epoch of L models in place: w_ih (G, I·L), w_hh (G, H·L), b_ih/b_hh (G·L,), w_out (V, H·L),
    b_out (V·L,), adam (E, 6, L), losses/correct (E, L), probs (T, V·L): the last forward pass. Returns the
    epochs every lane completed (fewer than E when a loss is not finite: no step is taken then)."""
    L = width(lanes)
    T, I = xs.shape
    G, HL, V, dtype = w_hh.shape[0], w_hh.shape[1], w_out.shape[0], xs.dtype
    params = (w_ih, w_hh, b_ih, b_hh, w_out, b_out)
    grads, means, squares = _zeros_like_all(params), _zeros_like_all(params), _zeros_like_all(params)
    w_ih_t, w_hh_t, w_out_t = np.empty((I, G * L), dtype), np.empty((HL // L, G * L), dtype), \
        np.empty((HL // L, V * L), dtype)
    best_target, mass, target_t = _shared_targets(targets)
    head_rows, project_rows = pass_rows(L, T)
    gi, gh = np.empty((project_rows, G * L), dtype), np.empty((1, G * L), dtype)
    dh_next, dc_next = np.empty((1, HL), dtype), np.empty((1, HL), dtype)
    hs, cs, tanh_cs = np.empty((T + 1, HL), dtype), np.empty((T + 1, HL), dtype), np.empty((T, HL), dtype)
    gates, dgh, dgi = np.empty((T, 4 * HL), dtype), np.empty((BPTT_CHUNK, G * L), dtype), \
        np.empty((BPTT_CHUNK, G * L), dtype)
    logits, dlogits = np.empty((head_rows, V * L), dtype), np.empty((head_rows, V * L), dtype)
    dhs, tops = np.empty((T, HL), dtype), np.empty((head_rows, L), dtype)
    denom, best = np.empty(L, dtype), np.zeros(L, np.int32)
    right, total = np.empty(L, np.int64), np.empty(L, np.float64)
    hs[0], cs[0] = 0, 0
    for epoch in range(losses.shape[0]):
        transpose(w_ih, w_ih_t, lanes)
        transpose(w_hh, w_hh_t, lanes)
        transpose(w_out, w_out_t, lanes)
        _zero_all(grads)
        right[:], total[:] = 0, 0
        for t0 in range(0, T, head_rows):  # the head follows the recurrence a chunk behind
            t1 = min(T, t0 + head_rows)
            _forward(family, relu, one, t0, t1, xs, w_ih_t, b_ih, gi, w_hh_t, b_hh, gh, hs, cs, tanh_cs, gates, lanes)
            _head(t0, t1, hs, w_out, w_out_t, b_out, targets, target_t, best_target, mass, scale, logits, probs,
                  dlogits, tops, denom, best, right, total, dhs, grads[4], grads[5], lanes)
        if not _epoch_losses(epoch, total, right, T, losses, correct):
            return epoch
        dh_next[:], dc_next[:] = 0, 0
        for t1 in range(T, 0, -BPTT_CHUNK):  # the gradients follow BPTT a chunk behind
            t0 = max(0, t1 - BPTT_CHUNK)
            _backward(family, relu, one, t0, t1, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next, dc_next, dgh, dgi, lanes)
            _gradients(family, t0, t1, xs, hs, dgh, dgi, grads, lanes)
        _adam_all(params, grads, means, squares, adam[epoch], lanes)
    return losses.shape[0]


@njit(cache=True, error_model="numpy", parallel=True)
def train_lanes(lanes, family, relu, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam, losses,
                correct, probs):
    """Every block (the leading axis of each array) in parallel; returns each block's completed epochs."""
    blocks = w_ih.shape[0]
    done = np.zeros(blocks, np.int64)
    for b in prange(blocks):
        done[b] = train_block(lanes, family, relu, one, xs, targets, scale, w_ih[b], w_hh[b], b_ih[b], b_hh[b],
                              w_out[b], b_out[b], adam[b], losses[b], correct[b], probs[b])
    return done
