"""The one compiled trainer of the exam's protocol (input projection, recurrence, head, softmax cross-entropy,
BPTT, Adam), for rnn (tanh, relu), lstm and gru, with the model as the innermost axis: SIMD lanes over models.

Its host (``compiled.train_models``) runs one model as one block of one lane (the compiled engine) and many models as
blocks of one lane or of :data:`LANES` in parallel over the cores (:func:`train_lanes`): each model bit-equal to
training it alone (the layout and why: ``lanes.py``; the cells: ``lane_cells.py``; the loss: ``lane_loss.py``, and for
one lane ``step_head.py``; what the functions pass each other and the buffers: ``workspace.py``). An epoch is a few
phases, each over a chunk of steps (``workspace.pass_rows``, ``BPTT_CHUNK``): forward with the head behind it
(:func:`forward_pass`, :func:`head_pass`), then backward with the weight gradients behind it (:func:`bptt_pass`,
:func:`gradient_pass`), then Adam (:func:`adam_step`). The phases compile with their array arguments marked distinct
(:class:`~nextchar.fused.lanes.DistinctArrays`), so no inner loop checks for overlap.

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
from .workspace import BPTT_CHUNK, Record, Weights, like, workspace

__all__ = ["LANES", "adam_step", "bptt_pass", "forward_pass", "gradient_pass", "head_pass", "lane_tag",
           "train_block", "train_lanes"]

LANES = 32
"""Models per block of the many engine (measured fastest of 8, 16, 32 and 64 here, K = 256)."""


@njit(**PHASE)
def _project(xs, n0, rows, w_ih_t, b_ih, gi):
    """The input projections of rows steps from n0 (a call of its own: inlined into the recurrence's loop, it
    made one model's forward 1.8x slower)."""
    project_shared(xs, n0, rows, w_ih_t, b_ih, gi)


@njit(**PHASE)
def forward_pass(problem, t0, t1, weights, work, lanes):
    """The recurrence over steps t0..t1 - 1, into hs[t0 + 1 : t1 + 1] (and cs; the family branch, once)."""
    family, one, gi, gh, hs = problem.family, problem.one, work.gi, work.gh, work.hs
    w_hh_t, b_hh = work.w_hh_t, weights.b_hh
    for s0 in range(t0, t1, gi.shape[0]):  # the input projections, gi.shape[0] steps at a time
        s1 = min(t1, s0 + gi.shape[0])
        _project(problem.xs, s0, s1 - s0, work.w_ih_t, weights.b_ih, gi)
        for t in range(s0, s1):
            row = t - s0  # step t's row of gi
            if family == 1:
                lstm_step(t, gi, row, w_hh_t, b_hh, gh, one, hs, work.cs, work.tanh_cs, work.gates, lanes)
            elif family == 2:
                gru_step(t, gi, row, w_hh_t, b_hh, gh, one, hs, work.gates, lanes)
            else:
                rnn_step(t, gi, row, w_hh_t, b_hh, gh, problem.relu, one, hs, lanes)


@njit(**PHASE)
def head_pass(problem, n0, n1, weights, work, probs, grads, lanes):
    """The head over steps n0..n1 - 1, while their states are in cache: logits, softmax cross-entropy (loss
    added, probs, dlogits), dhs = dlogits W_out and the head's weight gradients (added; rows in order, so the
    chunks sum as one pass would). logits, dlogits and tops hold one chunk."""
    rows, h = n1 - n0, work.hs[n0 + 1:n1 + 1]
    text = (problem.targets[n0:n1], problem.target_t[:, n0:n1], problem.best_target[n0:n1], problem.mass[n0:n1],
            problem.scale)
    score, d_head = (work.right, work.total), (grads.w_out, grads.b_out)
    if len(lanes) == 1:  # the steps as the vector axis (a row's 7 logits would be scalar code)
        step_head(h, (weights.w_out, weights.b_out), text, (probs[n0:n1], work.dlogits[:rows], work.dhs[n0:n1]),
                  score, d_head, lanes)
        return
    logit, dlogit = work.logits[:rows], work.dlogits[:rows]
    project(h, weights.w_out, work.w_out_t, weights.b_out, logit, lanes)
    head_loss(logit, text, (probs[n0:n1], dlogit), (work.tops[:rows], work.denom, work.best), score, lanes)
    into_hidden(dlogit, weights.w_out, work.dhs[n0:n1], lanes)
    weight_grads(h, dlogit, d_head[0], d_head[1], lanes)


@njit(**PHASE)
def bptt_pass(problem, t0, t1, weights, work, lanes):
    """BPTT over steps t1 - 1 down to t0 (dh_next, dc_next carry on from the chunk after): dgh[t - t0] =
    ∂L/∂(W_hh h + b_hh); dgi = ∂L/∂gi, which differs for the gru's n (for rnn and lstm the caller uses dgh)."""
    family, one, w_hh, dhs, dh_next, dgh = problem.family, problem.one, weights.w_hh, work.dhs, work.dh_next, work.dgh
    for t in range(t1 - 1, t0 - 1, -1):
        if family == 1:
            lstm_step_back(t, t - t0, dhs, dh_next, work.dc_next, work.cs, work.tanh_cs, work.gates, w_hh, one, dgh,
                           lanes)
        elif family == 2:
            gru_step_back(t, t - t0, dhs, dh_next, work.hs, work.gates, w_hh, one, work.dgi, dgh, work.dc_next, lanes)
        else:
            rnn_step_back(t, t - t0, dhs, dh_next, work.hs, w_hh, problem.relu, one, dgh, lanes)


@njit(**PHASE)
def gradient_pass(problem, t0, t1, work, grads, lanes):
    """The hidden and input projections' weight gradients of steps t0..t1 - 1, added to the later chunks'
    (the chunks from the last, as BPTT makes them, each chunk's rows in order: a reversed view would keep
    the loops scalar); hs (T + 1, H·L): h_{t-1} in row t."""
    rows = t1 - t0
    weight_grads(work.hs[t0:t1], work.dgh[:rows], grads.w_hh, grads.b_hh, lanes)
    weight_grads_shared(problem.xs[t0:t1], (work.dgi if problem.family == 2 else work.dgh)[:rows], grads.w_ih,
                        grads.b_ih, lanes)


@njit(**COMPILED)
def adam_step(params, grads, means, squares, a, lanes):
    """Adam on each of the six parameters (a tuple of mixed ranks: indexed with constants); a (6, L)."""
    adam(params[0], grads[0], means[0], squares[0], a, lanes)
    adam(params[1], grads[1], means[1], squares[1], a, lanes)
    adam(params[2], grads[2], means[2], squares[2], a, lanes)
    adam(params[3], grads[3], means[3], squares[3], a, lanes)
    adam(params[4], grads[4], means[4], squares[4], a, lanes)
    adam(params[5], grads[5], means[5], squares[5], a, lanes)


@njit(**COMPILED)
def _zero_all(arrays):
    """Each of the six gradients (a tuple of mixed ranks: indexed with constants)."""
    arrays[0][:], arrays[1][:], arrays[2][:], arrays[3][:], arrays[4][:], arrays[5][:] = 0, 0, 0, 0, 0, 0


@njit(**COMPILED)
def _epoch_losses(epoch, work, T, record):
    """Record each lane's mean loss and correct count; False when a loss is not finite."""
    finite = True
    for k in range(work.total.shape[0]):
        record.losses[epoch, k], record.correct[epoch, k] = work.total[k] / T, work.right[k]
        finite = finite and np.isfinite(record.losses[epoch, k])
    return finite


@njit(**COMPILED)
def train_block(problem, weights, adam, record, lanes):
    """Every epoch of one block of L models in place (``weights``, :class:`~.workspace.Weights` in the lanes
    layout), adam (E, 6, L) each epoch's scalars, ``record`` written (its probs: the last forward pass).
    Returns the epochs every lane completed (fewer than E when a loss is not finite: no step is taken then)."""
    T = problem.xs.shape[0]
    work = workspace(problem, weights, width(lanes))
    grads, means, squares = like(weights), like(weights), like(weights)
    head_rows = work.logits.shape[0]
    for epoch in range(record.losses.shape[0]):
        transpose(weights.w_ih, work.w_ih_t, lanes)
        transpose(weights.w_hh, work.w_hh_t, lanes)
        transpose(weights.w_out, work.w_out_t, lanes)
        _zero_all(grads)
        work.right[:], work.total[:] = 0, 0
        for t0 in range(0, T, head_rows):  # the head follows the recurrence a chunk behind
            t1 = min(T, t0 + head_rows)
            forward_pass(problem, t0, t1, weights, work, lanes)
            head_pass(problem, t0, t1, weights, work, record.probs, grads, lanes)
        if not _epoch_losses(epoch, work, T, record):
            return epoch
        work.dh_next[:], work.dc_next[:] = 0, 0
        for t1 in range(T, 0, -BPTT_CHUNK):  # the gradients follow BPTT a chunk behind
            t0 = max(0, t1 - BPTT_CHUNK)
            bptt_pass(problem, t0, t1, weights, work, lanes)
            gradient_pass(problem, t0, t1, work, grads, lanes)
        adam_step(weights, grads, means, squares, adam[epoch], lanes)
    return record.losses.shape[0]


@njit(cache=True, error_model="numpy", parallel=True)
def train_lanes(problem, weights, adam, record, lanes):
    """Every block (the leading axis of each array of ``weights``, ``adam`` and ``record``) in parallel;
    returns each block's completed epochs."""
    blocks = weights.w_ih.shape[0]
    done = np.zeros(blocks, np.int64)
    for b in prange(blocks):
        done[b] = train_block(problem, Weights(weights.w_ih[b], weights.w_hh[b], weights.b_ih[b], weights.b_hh[b],
                                               weights.w_out[b], weights.b_out[b]), adam[b],
                              Record(record.losses[b], record.correct[b], record.probs[b]), lanes)
    return done
