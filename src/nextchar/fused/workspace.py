"""What the compiled trainer's functions pass each other, as named tuples, and the one place its buffers are made.

numba types a named tuple field by field and hands each array in it to LLVM as arguments of its own (so
``lanes.DistinctArrays`` still marks each one noalias): a phase takes a few tuples, not 20 arrays.

- :class:`Problem`: what every lane shares (the family, the text, its targets' argmax and mass).
- :class:`Weights`: one block's six parameters; their gradients and Adam moments are ``Weights`` too.
- :class:`Record`: what a run writes for its caller (per-epoch losses and correct counts, the last probs).
- :class:`Workspace`: every per-step buffer, made by :func:`workspace` for a CPU block and the GPU alike.

Shapes: T steps, I inputs, V outputs, H hidden, G = H, 4H or 3H gates, E epochs, L lanes (models per block:
entry (r, c) of model k is ``a[r, c * L + k]``, ``lanes.py``). ``family``: 0 rnn, 1 lstm, 2 gru.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .elements import INLINE
from .lanes import COMPILED, transpose

__all__ = ["BPTT_CHUNK", "CHUNK", "Problem", "Record", "Weights", "Workspace", "pass_rows", "problem",
           "workspace"]

CHUNK = 32
"""Steps per pass of the head behind the recurrence (many lanes): it reads a chunk's states while they are in
cache, and the logits and ∂loss/∂logits are never whole (T, V·L) buffers. One lane runs the head in one pass."""
BPTT_CHUNK = 128
"""Steps per pass of the weight gradients behind BPTT, at every width (the sums' order depends on it, so the
widths agree bit for bit): ∂L/∂gates is (BPTT_CHUNK, G·L), not (T, G·L) (measured: 32 and 128 alike at 32
lanes, 128 faster for one lane: fewer calls)."""


class Problem(NamedTuple):
    """The exam's protocol for one family on one text, shared by every lane."""

    family: int
    relu: bool
    one: float
    """1 in the arrays' dtype (every literal is built from it)."""
    scale: float
    """1 / T in the arrays' dtype: the mean loss's factor on ∂loss/∂logits."""
    xs: np.ndarray
    """(T, I) the inputs (one-hot rows: a zero input is skipped)."""
    targets: np.ndarray
    """(T, V)"""
    target_t: np.ndarray
    """(V, T) the targets turned, for one lane's head (``step_head``)."""
    best_target: np.ndarray
    """(T,) int32: each step's first argmax of its target."""
    mass: np.ndarray
    """(T,) each step's Σ_v target."""


class Weights(NamedTuple):
    """One block's parameters in the lanes layout, torch's order of the exam's model."""

    w_ih: np.ndarray
    """(G, I·L)"""
    w_hh: np.ndarray
    """(G, H·L)"""
    b_ih: np.ndarray
    """(G·L,)"""
    b_hh: np.ndarray
    """(G·L,)"""
    w_out: np.ndarray
    """(V, H·L)"""
    b_out: np.ndarray
    """(V·L,)"""


class Record(NamedTuple):
    """What a run leaves for its caller."""

    losses: np.ndarray
    """(E, L) float64: each epoch's mean loss per lane."""
    correct: np.ndarray
    """(E, L) int64: each epoch's count of steps whose first argmax is the target's."""
    probs: np.ndarray
    """(T, V·L): the last forward pass's softmax."""


class Workspace(NamedTuple):
    """Every buffer an epoch writes, for one block of L lanes."""

    w_ih_t: np.ndarray
    """(I, G·L) w_ih turned (refreshed each epoch), and likewise:"""
    w_hh_t: np.ndarray
    """(H, G·L)"""
    w_out_t: np.ndarray
    """(H, V·L)"""
    gi: np.ndarray
    """(project rows, G·L): input projections, made a pass ahead (:func:`pass_rows`)."""
    gh: np.ndarray
    """(1, G·L): W_hh h_{t-1}."""
    hs: np.ndarray
    """(T + 1, H·L): h_t in row t + 1, h_{-1} = 0 in row 0."""
    cs: np.ndarray
    """(T + 1, H·L): c_t likewise (lstm)."""
    tanh_cs: np.ndarray
    """(T, H·L): tanh(c_t) (lstm)."""
    gates: np.ndarray
    """(T, 4·H·L): what BPTT needs of each step (lstm i f g o; gru r z n hn; the GPU's pre-activations)."""
    dhs: np.ndarray
    """(T, H·L): ∂loss/∂h_t through the head."""
    dh_next: np.ndarray
    """(1, H·L): ∂L/∂h carried back a step."""
    dc_next: np.ndarray
    """(1, H·L): ∂L/∂c carried back (lstm), the gru's direct path."""
    dgh: np.ndarray
    """(BPTT_CHUNK, G·L): ∂L/∂(W_hh h + b_hh) of a chunk's steps."""
    dgi: np.ndarray
    """(BPTT_CHUNK, G·L): ∂L/∂gi (differs from dgh in the gru's n block)."""
    logits: np.ndarray
    """(head rows, V·L)"""
    dlogits: np.ndarray
    """(head rows, V·L)"""
    tops: np.ndarray
    """(head rows, L): each row's max logit."""
    denom: np.ndarray
    """(L,) a row's softmax sum."""
    best: np.ndarray
    """(L,) int32: a row's first argmax."""
    right: np.ndarray
    """(L,) int64: the epoch's correct count."""
    total: np.ndarray
    """(L,) float64: the epoch's summed loss."""


@njit(**COMPILED)
def pass_rows(L, T):
    """Steps per head pass and per input projection pass at L lanes. One lane: the head in one pass and the
    projections all ahead of the recurrence (chunks would only add calls and short loops); many: the head a
    chunk behind, each projection just before its step (one row, in L1)."""
    return (T, T) if L == 1 else (CHUNK, 1)


@njit(**COMPILED)
def _target_summary(targets):
    """Each step's first argmax and mass (Σ_v, v ascending) of targets (T, V), and targets turned (V, T)."""
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


def problem(family: int, relu: bool, xs: np.ndarray, targets: np.ndarray) -> Problem:
    """The :class:`Problem` of ``family`` (0 rnn, 1 lstm, 2 gru) on xs (T, I) and targets (T, V), one dtype.
    Made in Python: its scalars stay numpy scalars of that dtype (a float returned from numba would be a
    Python float, typed float64, and promote a float32 trainer)."""
    dtype = xs.dtype.type
    best, mass, target_t = _target_summary(targets)
    return Problem(family, relu, dtype(1), dtype(1 / targets.shape[0]), xs, targets, target_t, best, mass)


@njit(**COMPILED)
def workspace(problem, weights, L):
    """The buffers of one block of ``L`` lanes training ``weights`` on ``problem``."""
    T, I = problem.xs.shape
    G, HL, V = weights.w_hh.shape[0], weights.w_hh.shape[1], weights.w_out.shape[0]
    dtype = problem.xs.dtype
    head_rows, project_rows = pass_rows(L, T)
    hs, cs = np.empty((T + 1, HL), dtype), np.empty((T + 1, HL), dtype)
    hs[0], cs[0] = 0, 0
    return Workspace(
        np.empty((I, G * L), dtype), np.empty((HL // L, G * L), dtype), np.empty((HL // L, V * L), dtype),
        np.empty((project_rows, G * L), dtype), np.empty((1, G * L), dtype),
        hs, cs, np.empty((T, HL), dtype), np.empty((T, 4 * HL), dtype),
        np.empty((T, HL), dtype), np.zeros((1, HL), dtype), np.zeros((1, HL), dtype),
        np.empty((BPTT_CHUNK, G * L), dtype), np.empty((BPTT_CHUNK, G * L), dtype),
        np.empty((head_rows, V * L), dtype), np.empty((head_rows, V * L), dtype), np.empty((head_rows, L), dtype),
        np.empty(L, dtype), np.zeros(L, np.int32), np.zeros(L, np.int64), np.zeros(L, np.float64))


@njit(**INLINE)
def like(weights):
    """Zeros shaped as ``weights`` (gradients, Adam's moments)."""
    return Weights(np.zeros_like(weights.w_ih), np.zeros_like(weights.w_hh), np.zeros_like(weights.b_ih),
                   np.zeros_like(weights.b_hh), np.zeros_like(weights.w_out), np.zeros_like(weights.b_out))
