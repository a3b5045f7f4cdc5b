"""The compiled trainer's design on the GPU (numba.cuda): one model per thread, every epoch inside one kernel.

The arrays are the CPU trainer's lanes layout (``lanes.py``) with one block of all K models as its lanes:
entry (r, c) of model k is ``a[r, c * K + k]``, so the 32 threads of a warp read 32 adjacent words (one
coalesced transaction) at every step. Each thread runs the exam's protocol for its own model, in the CPU
trainer's order of every sum (the projections p ascending, the head's rows in order, the weight gradients
over BPTT chunks of :data:`~nextchar.fused.workspace.BPTT_CHUNK` steps from the last, each chunk's rows in
order, torch's Adam): it differs from the CPU trainer only in libdevice's exp and log and in the fused
multiply-adds the GPU's compiler makes, so it is checked against the CPU trainer to round-off, not bit for
bit (``tests/fused/test_cuda_trainer.py``, on numba's CUDA simulator: ``NUMBA_ENABLE_CUDASIM=1``). A model
whose loss stops being finite ends alone (``done[k]``), before that epoch's step, as the CPU trainer's block
does.

Helpers are ``register_jitable``: plain Python under the simulator, device code on the GPU (and
``cuda.compile_ptx`` types them with no GPU attached). They take the CPU trainer's named tuples
(``workspace.py``: the problem, weights, record and the one workspace, made by the same function), so
shapes are ``workspace.py``'s: I inputs, V outputs, H hidden, G = H, 4H or 3H gates, T steps, E epochs.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda
from numba.extending import register_jitable

from .elements import (
    gpu_adam,
    gpu_cross_entropy_gradient,
    gpu_cross_entropy_term,
    gpu_gru_back,
    gpu_gru_tail,
    gpu_lstm_back,
    gpu_lstm_tail,
    gpu_rnn_back,
    gpu_sigmoid,
    gpu_tanh,
)
from .workspace import Problem, Record, Weights, workspace

__all__ = ["THREADS_PER_BLOCK", "on_device", "train_kernel", "train_on_gpu"]

THREADS_PER_BLOCK = 32
"""Models per CUDA block: one warp, so K = 528 models spread over 17 of the GPU's multiprocessors."""


@register_jitable
def _pre_activations(problem, t, k, L, weights, work):
    """gates[t, g] = gi + (gh + b_hh) for every gate row g (the gru's n: gh_n + b_hh in the hn block, and gi_n
    in the n block); gi = b_ih + Σ_i x w_ih (i ascending, zero inputs skipped), gh = Σ_p h_{t-1} w_hh."""
    xs, hs, gates, w_ih, w_hh, b_hh = problem.xs, work.hs, work.gates, weights.w_ih, weights.w_hh, weights.b_hh
    G, H = w_hh.shape[0], hs.shape[1] // L
    for g in range(G):
        gi = weights.b_ih[g * L + k]
        for i in range(xs.shape[1]):
            x = xs[t, i]
            if x != 0:
                gi += x * w_ih[g, i * L + k]
        gh = problem.one - problem.one
        for p in range(H):
            gh += hs[t, p * L + k] * w_hh[g, p * L + k]
        if problem.family == 2 and g >= 2 * H:  # the gru's n: r * (gh_n + b_hn) enters after r is known
            gates[t, (g + H) * L + k] = gh + b_hh[g * L + k]
            gates[t, g * L + k] = gi
        else:
            gates[t, g * L + k] = gi + (gh + b_hh[g * L + k])


@register_jitable
def _cell_step(problem, t, k, L, work):
    """Activates step t's gates (in place) and writes h_t into hs[t + 1] (and c_t into cs[t + 1])."""
    one, hs, cs, gates = problem.one, work.hs, work.cs, work.gates
    H = hs.shape[1] // L
    zero = one - one
    for u in range(H):
        q = u * L + k
        if problem.family == 1:  # lstm: i f g o
            i, f = gpu_sigmoid(gates[t, q], one), gpu_sigmoid(gates[t, H * L + q], one)
            g, o = gpu_tanh(gates[t, 2 * H * L + q], one), gpu_sigmoid(gates[t, 3 * H * L + q], one)
            gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q], gates[t, 3 * H * L + q] = i, f, g, o
            cs[t + 1, q], work.tanh_cs[t, q], hs[t + 1, q] = gpu_lstm_tail(i, f, g, o, cs[t, q], one)
        elif problem.family == 2:  # gru: r z n hn
            r, z = gpu_sigmoid(gates[t, q], one), gpu_sigmoid(gates[t, H * L + q], one)
            n, hs[t + 1, q] = gpu_gru_tail(gates[t, 2 * H * L + q], r, gates[t, 3 * H * L + q], z, hs[t, q], one)
            gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q] = r, z, n
        else:
            a = gates[t, q]
            hs[t + 1, q] = (a if a > zero else zero) if problem.relu else gpu_tanh(a, one)


@register_jitable
def _head_step(problem, t, k, L, weights, grads, work, probs, total):
    """Step t's head: logits, softmax cross-entropy (probs[t], ∂loss/∂logits into the logits' row 0), dhs[t] and
    the head's weight gradients (added). Returns (total plus the row's loss, 1 if its first argmax is the
    target's)."""
    w_out, hs, logits, targets, mass = weights.w_out, work.hs, work.logits, problem.targets, problem.mass
    V, H = w_out.shape[0], hs.shape[1] // L
    zero = problem.one - problem.one
    top, best = zero, 0
    for v in range(V):
        acc = weights.b_out[v * L + k]
        for p in range(H):
            acc += hs[t + 1, p * L + k] * w_out[v, p * L + k]
        logits[0, v * L + k] = acc
        if v == 0 or acc > top:
            top, best = acc, v
    denom = zero
    for v in range(V):
        probs[t, v * L + k] = math.exp(logits[0, v * L + k] - top)
        denom += probs[t, v * L + k]
    total += float(mass[t]) * float(math.log(denom))
    for v in range(V):
        probs[t, v * L + k] /= denom
        if targets[t, v] != 0:
            total += gpu_cross_entropy_term(logits[0, v * L + k], top, targets[t, v])
        dlogit = gpu_cross_entropy_gradient(probs[t, v * L + k], mass[t], targets[t, v], problem.scale)
        logits[0, v * L + k] = dlogit
        grads.b_out[v * L + k] += dlogit
        for p in range(H):
            grads.w_out[v, p * L + k] += dlogit * hs[t + 1, p * L + k]
    for p in range(H):  # dhs[t] = dlogits W_out, v ascending
        acc = zero
        for v in range(V):
            acc += logits[0, v * L + k] * w_out[v, p * L + k]
        work.dhs[t, p * L + k] = acc
    return total, 1 if best == problem.best_target[t] else 0


@register_jitable
def _step_back(problem, t, row, k, L, weights, work):
    """BPTT at step t: dgh[row] = ∂L/∂(W_hh h + b_hh), dgi[row] = ∂L/∂gi (they differ in the gru's n block);
    dh_next, dc_next (1, H·L) carry ∂L/∂h and ∂L/∂c from step t + 1 and leave with step t - 1's."""
    one, family, w_hh, hs, gates = problem.one, problem.family, weights.w_hh, work.hs, work.gates
    dh, dc, dgh, dgi = work.dh_next, work.dc_next, work.dgh, work.dgi
    H = hs.shape[1] // L
    zero = one - one
    for u in range(H):
        q = u * L + k
        d_h = work.dhs[t, q] + dh[0, q]
        if family == 1:
            (dgi[row, q], dgi[row, H * L + q], dgi[row, 2 * H * L + q], dgi[row, 3 * H * L + q],
             dc[0, q]) = gpu_lstm_back(d_h, dc[0, q], gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q],
                                       gates[t, 3 * H * L + q], work.tanh_cs[t, q], work.cs[t, q], one)
        elif family == 2:  # dc carries the gru's direct path h' = ... + z h, added after the product
            dgi[row, q], dgi[row, H * L + q], dgi[row, 2 * H * L + q], dc[0, q] = gpu_gru_back(
                d_h, gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q], gates[t, 3 * H * L + q], hs[t, q], one)
        else:
            dgi[row, q] = gpu_rnn_back(d_h, hs[t + 1, q], problem.relu, one)
    for g in range(w_hh.shape[0]):
        dgh[row, g * L + k] = dgi[row, g * L + k] * (gates[t, (g - 2 * H) * L + k] if family == 2 and g >= 2 * H
                                                     else one)
    for p in range(H):  # dh = Σ_g dgh[row, g] W_hh[g, p], g ascending
        acc = zero
        for g in range(w_hh.shape[0]):
            acc += dgh[row, g * L + k] * w_hh[g, p * L + k]
        dh[0, p * L + k] = dc[0, p * L + k] + acc if family == 2 else acc


@register_jitable
def _chunk_grads(problem, t0, t1, k, L, work, grads):
    """The hidden and input projections' weight gradients of steps t0..t1 - 1 (rows in order), added."""
    xs, hs, dgh, dgi = problem.xs, work.hs, work.dgh, work.dgi
    G, H = grads.w_hh.shape[0], hs.shape[1] // L
    for row in range(t1 - t0):
        t = t0 + row
        for g in range(G):
            q = g * L + k
            grads.b_hh[q] += dgh[row, q]
            grads.b_ih[q] += dgi[row, q]
            for p in range(H):
                grads.w_hh[g, p * L + k] += dgh[row, q] * hs[t, p * L + k]
            for i in range(xs.shape[1]):
                x = xs[t, i]
                if x != 0:
                    grads.w_ih[g, i * L + k] += dgi[row, q] * x


@register_jitable
def _adam(k, L, flat, a):
    """torch's Adam rule per element, as ``lanes.adam``; flat = (params, grads, means, squares), each every
    parameter flat (P·L,); a (6, L)."""
    params, grads, means, squares = flat
    for r in range(params.shape[0] // L):
        q = r * L + k
        params[q], means[q], squares[q] = gpu_adam(params[q], grads[q], means[q], squares[q], a[0, k], a[1, k],
                                                   a[2, k], a[3, k], a[4, k], a[5, k])


@register_jitable
def _forward(problem, k, L, weights, grads, work, probs):
    """The recurrence with the head one step behind; returns the summed loss (float64) and the correct count."""
    total, right = 0.0, 0
    for t in range(problem.xs.shape[0]):
        _pre_activations(problem, t, k, L, weights, work)
        _cell_step(problem, t, k, L, work)
        total, hit = _head_step(problem, t, k, L, weights, grads, work, probs, total)
        right += hit
    return total, right


@register_jitable
def _backward(problem, k, L, weights, work, grads):
    """BPTT over chunks of dgh.shape[0] steps from the last, each chunk's weight gradients right behind it."""
    chunk, T, H = work.dgh.shape[0], problem.xs.shape[0], work.hs.shape[1] // L
    for u in range(H):
        work.dh_next[0, u * L + k], work.dc_next[0, u * L + k] = 0, 0
    for t1 in range(T, 0, -chunk):
        t0 = t1 - chunk if t1 > chunk else 0  # (builtin max: a varargs overload numba.cuda cannot compile)
        for t in range(t1 - 1, t0 - 1, -1):
            _step_back(problem, t, t - t0, k, L, weights, work)
        _chunk_grads(problem, t0, t1, k, L, work, grads)


@cuda.jit
def train_kernel(problem, weights, grads, flat, adam, record, work, done):
    """Every epoch of model k = this thread. flat = (params, grads, means, squares), every parameter flat
    (P·L,); ``weights`` and ``grads`` (:class:`~.workspace.Weights`) are views of the first two; adam (E, 6, L);
    ``record`` and ``work`` as ``lane_trainer.train_block``'s; done (L,): each model's completed epochs."""
    k = cuda.grid(1)
    E, L = record.losses.shape
    if k >= L:
        return
    done[k] = E
    for epoch in range(E):
        for r in range(flat[1].shape[0] // L):
            flat[1][r * L + k] = 0
        total, right = _forward(problem, k, L, weights, grads, work, record.probs)
        record.losses[epoch, k], record.correct[epoch, k] = total / problem.xs.shape[0], right
        if math.isinf(record.losses[epoch, k]) or math.isnan(record.losses[epoch, k]):
            done[k] = epoch  # no step is taken with a loss that is not finite
            return
        _backward(problem, k, L, weights, work, grads)
        _adam(k, L, flat, adam[epoch])


def _flat_views(flat, shapes) -> Weights:
    """Views of the flat array ``flat`` (on the device or the host), one per shape, in order."""
    views, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return Weights(*views)


def on_device(arrays: tuple) -> tuple:
    """The named tuple ``arrays`` with each of its arrays copied to the GPU (its scalars as they are)."""
    return type(arrays)(*[cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in arrays])


def train_on_gpu(problem: Problem, weights: Weights, adam: np.ndarray, record: Record) -> np.ndarray:
    """``lane_trainer.train_block`` on the GPU, with all K models of ``weights`` as its lanes (L = K, any K): the
    same host arrays, trained in place, and ``record`` written. Returns each model's completed epochs (K,)."""
    L, dtype = adam.shape[2], problem.xs.dtype
    shapes = [p.shape for p in weights]
    flat = cuda.to_device(np.concatenate([p.reshape(-1) for p in weights]))
    grads, means, squares = (cuda.to_device(np.zeros(flat.shape[0], dtype)) for _ in range(3))
    work = workspace(problem, weights, L)  # the CPU block's buffers, made on the host, copied over
    d_record, done = on_device(record), cuda.to_device(np.zeros(L, np.int64))
    train_kernel[-(-L // THREADS_PER_BLOCK), THREADS_PER_BLOCK](
        on_device(problem), _flat_views(flat, shapes), _flat_views(grads, shapes), (flat, grads, means, squares),
        cuda.to_device(adam), d_record, on_device(work), done)
    for p, trained in zip(weights, _flat_views(flat.copy_to_host(), shapes)):
        p[...] = trained
    for host, device in zip(record, d_record):
        host[...] = device.copy_to_host()
    return done.copy_to_host()
