"""The compiled trainer's design on the GPU (numba.cuda): one model per thread, every epoch inside one kernel.

The arrays are the CPU trainer's lanes layout (``lanes.py``) with one block of all K models as its lanes:
entry (r, c) of model k is ``a[r, c * K + k]``, so the 32 threads of a warp read 32 adjacent words (one
coalesced transaction) at every step. Each thread runs the exam's protocol for its own model, in the CPU
trainer's order of every sum (the projections p ascending, the head's rows in order, the weight gradients
over BPTT chunks of :data:`~nextchar.fused.lane_trainer.BPTT_CHUNK` steps from the last, each chunk's rows in
order, torch's Adam): it differs from the CPU trainer only in libdevice's exp and log and in the fused
multiply-adds the GPU's compiler makes, so it is checked against the CPU trainer to round-off, not bit for
bit (``tests/fused/test_cuda_trainer.py``, on numba's CUDA simulator: ``NUMBA_ENABLE_CUDASIM=1``). A model
whose loss stops being finite ends alone (``done[k]``), before that epoch's step, as the CPU trainer's block
does.

Helpers are ``register_jitable``: plain Python under the simulator, device code on the GPU (and
``cuda.compile_ptx`` types them with no GPU attached). Shapes as ``trainer.py``'s: I inputs, V outputs, H
hidden, G = H, 4H or 3H gates, T steps, E epochs; ``family`` 0 rnn, 1 lstm, 2 gru.
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

__all__ = ["THREADS_PER_BLOCK", "train_on_gpu"]

THREADS_PER_BLOCK = 32
"""Models per CUDA block: one warp, so K = 528 models spread over 17 of the GPU's multiprocessors."""


@register_jitable
def _pre_activations(family, one, t, k, L, xs, w_ih, b_ih, w_hh, b_hh, hs, gates):
    """gates[t, g] = gi + (gh + b_hh) for every gate row g (the gru's n: gh_n + b_hh in the hn block, and gi_n
    in the n block); gi = b_ih + Σ_i x w_ih (i ascending, zero inputs skipped), gh = Σ_p h_{t-1} w_hh."""
    G, H = w_hh.shape[0], hs.shape[1] // L
    for g in range(G):
        gi = b_ih[g * L + k]
        for i in range(xs.shape[1]):
            x = xs[t, i]
            if x != 0:
                gi += x * w_ih[g, i * L + k]
        gh = one - one
        for p in range(H):
            gh += hs[t, p * L + k] * w_hh[g, p * L + k]
        if family == 2 and g >= 2 * H:  # the gru's n: r * (gh_n + b_hn) enters after r is known
            gates[t, (g + H) * L + k] = gh + b_hh[g * L + k]
            gates[t, g * L + k] = gi
        else:
            gates[t, g * L + k] = gi + (gh + b_hh[g * L + k])


@register_jitable
def _cell_step(family, relu, one, t, k, L, hs, cs, tanh_cs, gates):
    """Activates step t's gates (in place) and writes h_t into hs[t + 1] (and c_t into cs[t + 1])."""
    H = hs.shape[1] // L
    zero = one - one
    for u in range(H):
        q = u * L + k
        if family == 1:  # lstm: i f g o
            i, f = gpu_sigmoid(gates[t, q], one), gpu_sigmoid(gates[t, H * L + q], one)
            g, o = gpu_tanh(gates[t, 2 * H * L + q], one), gpu_sigmoid(gates[t, 3 * H * L + q], one)
            gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q], gates[t, 3 * H * L + q] = i, f, g, o
            cs[t + 1, q], tanh_cs[t, q], hs[t + 1, q] = gpu_lstm_tail(i, f, g, o, cs[t, q], one)
        elif family == 2:  # gru: r z n hn
            r, z = gpu_sigmoid(gates[t, q], one), gpu_sigmoid(gates[t, H * L + q], one)
            n, hs[t + 1, q] = gpu_gru_tail(gates[t, 2 * H * L + q], r, gates[t, 3 * H * L + q], z, hs[t, q], one)
            gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q] = r, z, n
        else:
            a = gates[t, q]
            hs[t + 1, q] = (a if a > zero else zero) if relu else gpu_tanh(a, one)


@register_jitable
def _head_step(one, t, k, L, hs, w_out, b_out, targets, best_target, mass, scale, logits, probs, dhs, d_w_out,
               d_b_out, total):
    """Step t's head: logits, softmax cross-entropy (probs[t], ∂loss/∂logits into logits), dhs[t] and the head's
    weight gradients (added). Returns (total plus the row's loss, 1 if its first argmax is the target's)."""
    V, H = w_out.shape[0], hs.shape[1] // L
    zero = one - one
    top, best = zero, 0
    for v in range(V):
        acc = b_out[v * L + k]
        for p in range(H):
            acc += hs[t + 1, p * L + k] * w_out[v, p * L + k]
        logits[v * L + k] = acc
        if v == 0 or acc > top:
            top, best = acc, v
    denom = zero
    for v in range(V):
        probs[t, v * L + k] = math.exp(logits[v * L + k] - top)
        denom += probs[t, v * L + k]
    total += float(mass[t]) * float(math.log(denom))
    for v in range(V):
        probs[t, v * L + k] /= denom
        if targets[t, v] != 0:
            total += gpu_cross_entropy_term(logits[v * L + k], top, targets[t, v])
        dlogit = gpu_cross_entropy_gradient(probs[t, v * L + k], mass[t], targets[t, v], scale)
        logits[v * L + k] = dlogit
        d_b_out[v * L + k] += dlogit
        for p in range(H):
            d_w_out[v, p * L + k] += dlogit * hs[t + 1, p * L + k]
    for p in range(H):  # dhs[t] = dlogits W_out, v ascending
        acc = zero
        for v in range(V):
            acc += logits[v * L + k] * w_out[v, p * L + k]
        dhs[t, p * L + k] = acc
    return total, 1 if best == best_target[t] else 0


@register_jitable
def _step_back(family, relu, one, t, row, k, L, dhs, hs, cs, tanh_cs, gates, w_hh, dh, dc, dgh, dgi):
    """BPTT at step t: dgh[row] = ∂L/∂(W_hh h + b_hh), dgi[row] = ∂L/∂gi (they differ in the gru's n block);
    dh, dc (H·L,) carry ∂L/∂h and ∂L/∂c from step t + 1 and leave with step t - 1's."""
    H = hs.shape[1] // L
    zero = one - one
    for u in range(H):
        q = u * L + k
        d_h = dhs[t, q] + dh[q]
        if family == 1:
            (dgi[row, q], dgi[row, H * L + q], dgi[row, 2 * H * L + q], dgi[row, 3 * H * L + q],
             dc[q]) = gpu_lstm_back(d_h, dc[q], gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q],
                                    gates[t, 3 * H * L + q], tanh_cs[t, q], cs[t, q], one)
        elif family == 2:  # dc carries the gru's direct path h' = ... + z h, added after the product
            dgi[row, q], dgi[row, H * L + q], dgi[row, 2 * H * L + q], dc[q] = gpu_gru_back(
                d_h, gates[t, q], gates[t, H * L + q], gates[t, 2 * H * L + q], gates[t, 3 * H * L + q], hs[t, q], one)
        else:
            dgi[row, q] = gpu_rnn_back(d_h, hs[t + 1, q], relu, one)
    for g in range(w_hh.shape[0]):
        dgh[row, g * L + k] = dgi[row, g * L + k] * (gates[t, (g - 2 * H) * L + k] if family == 2 and g >= 2 * H
                                                     else one)
    for p in range(H):  # dh = Σ_g dgh[row, g] W_hh[g, p], g ascending
        acc = zero
        for g in range(w_hh.shape[0]):
            acc += dgh[row, g * L + k] * w_hh[g, p * L + k]
        dh[p * L + k] = dc[p * L + k] + acc if family == 2 else acc


@register_jitable
def _chunk_grads(t0, t1, k, L, xs, hs, dgh, dgi, d_w_ih, d_w_hh, d_b_ih, d_b_hh):
    """The hidden and input projections' weight gradients of steps t0..t1 - 1 (rows in order), added."""
    G, H = d_w_hh.shape[0], hs.shape[1] // L
    for row in range(t1 - t0):
        t = t0 + row
        for g in range(G):
            q = g * L + k
            d_b_hh[q] += dgh[row, q]
            d_b_ih[q] += dgi[row, q]
            for p in range(H):
                d_w_hh[g, p * L + k] += dgh[row, q] * hs[t, p * L + k]
            for i in range(xs.shape[1]):
                x = xs[t, i]
                if x != 0:
                    d_w_ih[g, i * L + k] += dgi[row, q] * x


@register_jitable
def _adam(k, L, params, grads, means, squares, a):
    """torch's Adam rule per element, as ``lanes.adam``; params etc. flat (P·L,), a (6, L)."""
    for r in range(params.shape[0] // L):
        q = r * L + k
        params[q], means[q], squares[q] = gpu_adam(params[q], grads[q], means[q], squares[q], a[0, k], a[1, k],
                                                   a[2, k], a[3, k], a[4, k], a[5, k])


@register_jitable
def _forward(family, relu, one, k, L, xs, targets, best_target, mass, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out,
             d_w_out, d_b_out, hs, cs, tanh_cs, gates, logits, probs, dhs):
    """The recurrence with the head one step behind; returns the summed loss (float64) and the correct count."""
    total, right = 0.0, 0
    for t in range(xs.shape[0]):
        _pre_activations(family, one, t, k, L, xs, w_ih, b_ih, w_hh, b_hh, hs, gates)
        _cell_step(family, relu, one, t, k, L, hs, cs, tanh_cs, gates)
        total, hit = _head_step(one, t, k, L, hs, w_out, b_out, targets, best_target, mass, scale, logits, probs, dhs,
                                d_w_out, d_b_out, total)
        right += hit
    return total, right


@register_jitable
def _backward(family, relu, one, k, L, xs, hs, cs, tanh_cs, gates, dhs, w_hh, dh, dc, dgh, dgi, d_w_ih, d_w_hh,
              d_b_ih, d_b_hh):
    """BPTT over chunks of dgh.shape[0] steps from the last, each chunk's weight gradients right behind it."""
    chunk, T, H = dgh.shape[0], xs.shape[0], hs.shape[1] // L
    for u in range(H):
        dh[u * L + k], dc[u * L + k] = 0, 0
    for t1 in range(T, 0, -chunk):
        t0 = t1 - chunk if t1 > chunk else 0  # (builtin max: a varargs overload numba.cuda cannot compile)
        for t in range(t1 - 1, t0 - 1, -1):
            _step_back(family, relu, one, t, t - t0, k, L, dhs, hs, cs, tanh_cs, gates, w_hh, dh, dc, dgh, dgi)
        _chunk_grads(t0, t1, k, L, xs, hs, dgh, dgi, d_w_ih, d_w_hh, d_b_ih, d_b_hh)


@cuda.jit
def _train_kernel(family, relu, one, xs, targets, best_target, mass, scale, params, w_ih, w_hh, b_ih, b_hh, w_out,
                  b_out, grads, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_out, d_b_out, means, squares, adam, losses,
                  correct, probs, hs, cs, tanh_cs, gates, dhs, logits, dh, dc, dgh, dgi, done):
    """Every epoch of model k = this thread. params, grads, means, squares: every parameter flat (P·L,), the
    2-D arrays are views of them (w_ih (G, I·L) ...); the scratch arrays as ``trainer.train_block``'s."""
    k = cuda.grid(1)
    E, L = losses.shape
    if k >= L:
        return
    done[k] = E
    for epoch in range(E):
        for r in range(grads.shape[0] // L):
            grads[r * L + k] = 0
        total, right = _forward(family, relu, one, k, L, xs, targets, best_target, mass, scale, w_ih, w_hh, b_ih,
                                b_hh, w_out, b_out, d_w_out, d_b_out, hs, cs, tanh_cs, gates, logits, probs, dhs)
        losses[epoch, k], correct[epoch, k] = total / xs.shape[0], right
        if math.isinf(losses[epoch, k]) or math.isnan(losses[epoch, k]):
            done[k] = epoch  # no step is taken with a loss that is not finite
            return
        _backward(family, relu, one, k, L, xs, hs, cs, tanh_cs, gates, dhs, w_hh, dh, dc, dgh, dgi, d_w_ih, d_w_hh,
                  d_b_ih, d_b_hh)
        _adam(k, L, params, grads, means, squares, adam[epoch])


def _flat_views(flat, shapes):
    """Views of the flat array ``flat`` (on the device or the host), one per shape, in order."""
    views, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return views


def train_on_gpu(family, relu, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam, losses, correct,
                 probs) -> np.ndarray:
    """``trainer.train_block`` on the GPU, with all K models of the arrays as its lanes (L = K, any K): the same
    host arrays, trained in place (the parameters, losses/correct (E, K), probs (T, V·K)). Returns each
    model's completed epochs (K,)."""
    from .lane_trainer import BPTT_CHUNK, _shared_targets

    L, (T, V), dtype = adam.shape[2], targets.shape, xs.dtype
    G, HL = w_hh.shape
    params = (w_ih, w_hh, b_ih, b_hh, w_out, b_out)
    shapes = [p.shape for p in params]
    best_target, mass, _ = _shared_targets(targets)
    flat = cuda.to_device(np.concatenate([p.reshape(-1) for p in params]))
    grads = cuda.to_device(np.zeros(flat.shape[0], dtype))
    means, squares = cuda.to_device(np.zeros(flat.shape[0], dtype)), cuda.to_device(np.zeros(flat.shape[0], dtype))
    scratch = [np.zeros(shape, dtype) for shape in ((T + 1, HL), (T + 1, HL), (T, HL), (T, 4 * HL), (T, HL),
                                                     (V * L,), (HL,), (HL,), (BPTT_CHUNK, G * L), (BPTT_CHUNK, G * L))]
    d_losses, d_correct, d_probs = cuda.to_device(losses), cuda.to_device(correct), cuda.to_device(probs)
    done = cuda.to_device(np.zeros(L, np.int64))
    blocks = -(-L // THREADS_PER_BLOCK)
    _train_kernel[blocks, THREADS_PER_BLOCK](
        family, relu, one, cuda.to_device(xs), cuda.to_device(targets), cuda.to_device(best_target),
        cuda.to_device(mass), scale, flat, *_flat_views(flat, shapes), grads, *_flat_views(grads, shapes), means,
        squares, cuda.to_device(adam), d_losses, d_correct, d_probs, *[cuda.to_device(s) for s in scratch], done)
    for p, trained in zip(params, _flat_views(flat.copy_to_host(), shapes)):
        p[...] = trained
    losses[...], correct[...], probs[...] = d_losses.copy_to_host(), d_correct.copy_to_host(), d_probs.copy_to_host()
    return done.copy_to_host()
