"""Softmax cross-entropy of the head on the lanes layout (``lanes.py``): the loss, probabilities and
∂loss/∂logits of every lane against the targets they share, and the gradient back into the hidden states.
Many lanes only: one lane's head runs with the steps as the vector axis (``step_head.py``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .elementary import exp_of, log_of
from .elements import cross_entropy_gradient, cross_entropy_term
from .lanes import INLINE, outer_sum, width


@njit(**INLINE)
def row_max(logits, n, tops, best, lanes):
    """tops[n] (L,) = row n's max per lane, best (L,) = its first index (argmax's)."""
    L = width(lanes)
    V = logits.shape[1] // L
    for k in range(L):
        tops[n, k] = logits[n, k]
    for v in range(V):
        for k in range(L):
            tops[n, k] = np.maximum(tops[n, k], logits[n, v * L + k])  # a select (builtin max branches)
    for v in range(V - 1, -1, -1):  # the lowest v at the max wins: a select per lane, no branch
        for k in range(L):
            best[k] = v if logits[n, v * L + k] == tops[n, k] else best[k]


@njit(**INLINE)
def softmax_rows(logits, best_target, probs, tops, best, right, lanes):
    """probs (N, V·L) = exp(logits - each row's max), unnormalised; tops (N, L): the max; right (L,): adds
    how often the first index of the max is the target's."""
    L = width(lanes)
    for n in range(logits.shape[0]):
        row_max(logits, n, tops, best, lanes)
        for k in range(L):
            right[k] += best[k] == best_target[n]
        for v in range(logits.shape[1] // L):
            for k in range(L):
                probs[n, v * L + k] = logits[n, v * L + k] - tops[n, k]
    flat = probs.reshape(-1)  # probs: C-contiguous rows (a chunk's view is too)
    for q in range(flat.size):  # one long run: vectorized at any width (a run of V = 7 would not be)
        flat[q] = exp_of(flat[q])


@njit(**INLINE)
def row_sums(probs, n, denom, lanes):
    """denom (L,) = Σ_v probs[n, v] per lane (v ascending)."""
    L = width(lanes)
    for k in range(L):
        denom[k] = 0
    for v in range(probs.shape[1] // L):
        for k in range(L):
            denom[k] += probs[n, v * L + k]


@njit(**INLINE)
def head_loss(logits, text, out, scratch, score, lanes):
    """Softmax cross-entropy of logits (N, V·L) against the shared targets: text = (targets (N, V), their
    transpose (unused here), best_target, mass (N,), scale = 1/T); writes out = (probs, dlogits: ∂ loss /
    ∂ logits, times scale), with scratch = (tops (N, L), denom (L,), best (L,)), and adds to score =
    (right (L,): each lane's correct count, total (L,) float64: its summed loss, ~1000 rows) with the rows in
    order: a run's chunks add up to the whole run's sums."""
    targets, _, best_target, mass, scale = text
    probs, dlogits = out
    tops, denom, best = scratch
    right, total = score
    L = width(lanes)
    N, V = logits.shape[0], logits.shape[1] // L
    softmax_rows(logits, best_target, probs, tops, best, right, lanes)
    for n in range(N):
        row_sums(probs, n, denom, lanes)
        for k in range(L):  # -Σ_v y_v log p_v = Σ_v y_v log Σ - Σ_v y_v (logit_v - top)
            total[k] += float(mass[n]) * float(log_of(denom[k]))
        for v in range(V):
            t_nv = targets[n, v]
            for k in range(L):
                probs[n, v * L + k] /= denom[k]
                if t_nv != 0:
                    total[k] += cross_entropy_term(logits[n, v * L + k], tops[n, k], t_nv)
                dlogits[n, v * L + k] = cross_entropy_gradient(probs[n, v * L + k], mass[n], t_nv, scale)


@njit(**INLINE)
def into_hidden(dlogits, w_out, dhs, lanes):
    """dhs (N, H·L) = dlogits W_out; w_out (V, H·L)."""
    for n in range(dhs.shape[0]):
        for q in range(dhs.shape[1]):
            dhs[n, q] = 0
        outer_sum(dlogits, n, w_out, dhs, n, lanes)
