"""One model's head (one lane: the compiled engine) with the steps as the vector axis.

On the lanes layout one lane's runs are a row's V = 7 logits or H = 4..8 units: too short for a vector, so
its products and softmax ran as scalar code (about a third of one model's epoch). Here a pass's rows are
turned to (column, step), so each inner loop runs over the steps, contiguous, and vectorizes. Every element
is computed as the lanes head computes it (``lanes.project``, ``lane_loss.head_loss``, ``into_hidden``), in
the same order, so one lane stays bit-equal to a block of many. The sums over the steps (the loss, the
weight gradients) keep the steps in order: they run as before, on the (step, column) layout.

Shapes: N steps of the pass, H hidden, V outputs; ``*_t`` (columns, N).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .elementary import exp_of, log_of
from .elements import cross_entropy_gradient, cross_entropy_term
from .lanes import INLINE, transpose, weight_grads


@njit(**INLINE)
def steps_logits(h_t, w_out, b_out, logit_t):
    """logit_t (V, N) = b_out + Σ_p w_out[:, p] h_t[p] (p ascending); h_t (H, N)."""
    for v in range(logit_t.shape[0]):
        for n in range(logit_t.shape[1]):
            logit_t[v, n] = b_out[v]
        for p in range(h_t.shape[0]):
            w = w_out[v, p]
            for n in range(logit_t.shape[1]):
                logit_t[v, n] += h_t[p, n] * w


@njit(**INLINE)
def steps_softmax(logit_t, best_target, prob_t, top, best, right):
    """prob_t (V, N) = exp(logit - the step's max), unnormalised; top (N,): the max; right (1,): adds the steps
    whose first index of the max is the target's."""
    V, N = logit_t.shape
    for n in range(N):
        top[n], best[n] = logit_t[0, n], 0
    for v in range(V):
        for n in range(N):
            top[n] = np.maximum(top[n], logit_t[v, n])
    for v in range(V - 1, -1, -1):  # the lowest v at the max wins
        for n in range(N):
            best[n] = v if logit_t[v, n] == top[n] else best[n]
    for n in range(N):
        right[0] += best[n] == best_target[n]
    for v in range(V):
        for n in range(N):
            prob_t[v, n] = exp_of(logit_t[v, n] - top[n])


@njit(**INLINE)
def steps_loss(logit_t, targets, target_t, mass, scale, prob_t, top, denom, total, dlogit_t):
    """Normalise prob_t, add each step's cross-entropy to total (1,) (steps in order, float64) and write
    dlogit_t (V, N) = (p mass - y) scale; targets (N, V), target_t its transpose."""
    V, N = prob_t.shape
    for n in range(N):
        denom[n] = 0
    for v in range(V):
        for n in range(N):
            denom[n] += prob_t[v, n]
    log_denom = np.empty_like(denom)
    for n in range(N):
        log_denom[n] = log_of(denom[n])
    for n in range(N):  # -Σ_v y_v log p_v = Σ_v y_v log Σ - Σ_v y_v (logit_v - top)
        total[0] += float(mass[n]) * float(log_denom[n])
        for v in range(V):
            if targets[n, v] != 0:
                total[0] += cross_entropy_term(logit_t[v, n], top[n], targets[n, v])
    for v in range(V):
        for n in range(N):
            prob_t[v, n] /= denom[n]
            dlogit_t[v, n] = cross_entropy_gradient(prob_t[v, n], mass[n], target_t[v, n], scale)


@njit(**INLINE)
def steps_into_hidden(dlogit_t, w_out, dh_t):
    """dh_t (H, N) = Σ_v w_out[v] dlogit_t[v] (v ascending)."""
    for p in range(dh_t.shape[0]):
        for n in range(dh_t.shape[1]):
            dh_t[p, n] = 0
        for v in range(dlogit_t.shape[0]):
            w = w_out[v, p]
            for n in range(dh_t.shape[1]):
                dh_t[p, n] += dlogit_t[v, n] * w


@njit(**INLINE)
def step_head(h, head, text, out, score, d_head, lanes):
    """The head of one lane over a pass's N steps: h (N, H) the states; head = (w_out, b_out); text =
    (targets (N, V), their transpose (V, N), best_target, mass (N,), scale); out = (probs, dlogits (N, V), dhs
    (N, H)) written; score = (right, total) (1,) and d_head = the head's weight gradients, added
    (``lane_trainer.head_pass`` for many lanes)."""
    w_out, b_out = head
    targets, target_t, best_target, mass, scale = text
    probs, dlogits, dhs = out
    right, total = score
    N, H, V = h.shape[0], h.shape[1], w_out.shape[0]
    h_t, dh_t = np.empty((H, N), h.dtype), np.empty((H, N), h.dtype)
    logit_t, prob_t, dlogit_t = np.empty((V, N), h.dtype), np.empty((V, N), h.dtype), np.empty((V, N), h.dtype)
    top, denom, best = np.empty(N, h.dtype), np.empty(N, h.dtype), np.empty(N, np.int32)
    transpose(h, h_t, lanes)
    steps_logits(h_t, w_out, b_out, logit_t)
    steps_softmax(logit_t, best_target, prob_t, top, best, right)
    steps_loss(logit_t, targets, target_t, mass, scale, prob_t, top, denom, total, dlogit_t)
    transpose(prob_t, probs, lanes)
    transpose(dlogit_t, dlogits, lanes)
    steps_into_hidden(dlogit_t, w_out, dh_t)
    transpose(dh_t, dhs, lanes)
    weight_grads(h, dlogits, d_head[0], d_head[1], lanes)
