"""The one compiled trainer of the exam's protocol (input projection, recurrence, head, softmax cross-entropy,
BPTT, Adam), for rnn (tanh, relu), lstm and gru, with the model as the innermost axis: SIMD lanes over models.

Layout: every array is 2-D, rows by (column, lane), the lane innermost: entry (r, c) of model k is
``a[r, c * L + k]`` (``w_hh`` (G, H·L), ``hs`` (T, H·L), biases (G·L,)). Each loop's innermost run over the
L models is contiguous, so LLVM turns it into vector instructions: one instruction advances several models.
Nothing crosses lanes, so each model's arithmetic is the same whatever L is: the compiled engine
(``compiled.compiled_fit``) is this trainer with one lane, on the model's own parameter memory (with L = 1
the layout is torch's), and the many engine (``many.fit_many``) runs blocks of :data:`LANES` models in
parallel over the cores (:func:`train_lanes`) — each model bit-equal to training it alone.

``lanes`` (:func:`lane_tag`) tells the compiler which: a 1-tuple compiles L = 1 in, so the lane loops
vanish and the loop above each (over gates or units, contiguous too) is the one LLVM vectorizes; a 2-tuple
carries L at run time (a constant 32 would be unrolled into scalar code before the loop vectorizer sees
it). Every sum runs in the same order at every width, so the widths agree bit for bit: no fast-math (LLVM
may not reassociate or fuse), and ``error_model="numpy"`` only drops the zero-divisor check that would
keep the loops scalar (no divisor here can be zero: each is 1 + exp(·), a softmax sum or Adam's
denominator).

Matrix products are sums of outer products, ``out[g] += x[p] w_t[p, g]`` with p ascending, over transposed
copies of the weights where the forward pass needs them (``*_t`` (P, G·L), refreshed each epoch): the
innermost run is then (g, lane), contiguous, and no product is a horizontal reduction.

Shapes per block: I inputs (shared by all models), V outputs, H hidden, G = H (rnn), 4H (lstm: i f g o) or
3H (gru: r z n), T steps, E epochs, L lanes. ``family``: 0 rnn, 1 lstm, 2 gru. Every literal is built from
``one`` (the arrays' dtype): a bare 1.0 would promote a float32 kernel to float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core.compiler import Compiler

from .kernels import exp_of

LANES = 32
"""Models per block of the many engine (measured fastest of 8, 16, 32 and 64 here, K = 256)."""

class _DistinctArrays(Compiler):
    """numba's pipeline with every array argument marked ``noalias`` for LLVM: true of the phase functions
    below (each gets distinct buffers), and it lets the loop vectorizer drop the run-time overlap checks it
    would otherwise run before every inner loop (at 32 lanes, one per 32 multiply-adds)."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()


_inline = dict(cache=True, error_model="numpy", inline="always")
_compiled = dict(cache=True, error_model="numpy")
_phase = dict(cache=True, error_model="numpy", pipeline_class=_DistinctArrays)


def lane_tag(width: int) -> tuple:
    """The ``lanes`` argument for ``width`` models per block: (1,) compiles one lane in, (width, width)
    leaves the width to run time."""
    return (1,) if width == 1 else (width, width)


@njit(**_inline)
def _width(lanes):
    return 1 if len(lanes) == 1 else lanes[0]


@njit(**_inline)
def _transpose(w, w_t, lanes):
    """w_t (P, G·L) = w (G, P·L) with its two axes swapped, lane by lane."""
    L = _width(lanes)
    G, P = w.shape[0], w_t.shape[0]
    for g in range(G):
        for p in range(P):
            for k in range(L):
                w_t[p, g * L + k] = w[g, p * L + k]


@njit(**_inline)
def _outer_sum(x, n, w_t, out, m, lanes):
    """out[m] (G·L) += Σ_p x[n, p] w_t[p] (p ascending); x (N, P·L), w_t (P, G·L), out (M, G·L)."""
    L = _width(lanes)
    P, G = w_t.shape[0], w_t.shape[1] // L
    for p in range(P):
        for g in range(G):
            for k in range(L):
                out[m, g * L + k] += x[n, p * L + k] * w_t[p, g * L + k]


@njit(**_inline)
def _project(x, w, w_t, b, out, lanes):
    """out (N, G·L) = b + Σ_p x[n, p] w[:, p] (p ascending); x (N, P·L): each lane its own input; w (G, P·L)
    and its transpose w_t (P, G·L)."""
    if len(lanes) == 1:  # one lane: each sum in a register over w's contiguous rows (same order, same bits)
        for n in range(out.shape[0]):
            for g in range(out.shape[1]):
                acc = b[g]
                for p in range(w.shape[1]):
                    acc += x[n, p] * w[g, p]
                out[n, g] = acc
    else:
        for n in range(out.shape[0]):
            for q in range(out.shape[1]):
                out[n, q] = b[q]
            _outer_sum(x, n, w_t, out, n, lanes)


@njit(**_inline)
def _project_shared(xs, w_t, b, out, lanes):
    """out (N, G·L) = b + Σ_i xs[n, i] w_t[i] (i ascending); xs (N, I) is shared by the lanes. A zero input
    adds nothing (+0 is exact), so a one-hot row costs one pass, not I."""
    N, I = xs.shape
    for n in range(N):
        for q in range(out.shape[1]):
            out[n, q] = b[q]
        for i in range(I):
            x = xs[n, i]
            if x != 0:
                for q in range(out.shape[1]):
                    out[n, q] += x * w_t[i, q]


@njit(**_inline)
def _hidden_matmul(t, hs, w_hh_t, gh, lanes):
    """gh (1, G·L) = W_hh h_{t-1} from zero; hs (T + 1, H·L) holds h_{t-1} in row t (row 0: h_{-1} = 0)."""
    for q in range(gh.shape[1]):
        gh[0, q] = 0
    _outer_sum(hs, t, w_hh_t, gh, 0, lanes)


@njit(**_inline)
def _rnn_step(t, gi, w_hh_t, b_hh, gh, relu, one, hs, lanes):
    """h_t = act(gi + W_hh h_{t-1} + b_hh), act = relu or tanh (2 σ(2a) - 1), into hs[t + 1]."""
    zero, two = one - one, one + one
    _hidden_matmul(t, hs, w_hh_t, gh, lanes)
    for q in range(hs.shape[1]):
        a = gi[t, q] + (gh[0, q] + b_hh[q])
        if relu:
            hs[t + 1, q] = a if a > zero else zero
        else:
            hs[t + 1, q] = two / (one + exp_of(-(a + a))) - one


@njit(**_inline)
def _lstm_step(t, gi, w_hh_t, b_hh, gh, one, hs, cs, tanh_cs, gates, lanes):
    """i, f, g, o = σ, σ, tanh, σ of (gi + W_hh h + b_hh); c' = f c + i g; h' = o tanh(c'). cs like hs (row 0:
    c_{-1} = 0). One store per loop: more would need more run-time overlap checks than LLVM makes."""
    HL = hs.shape[1]
    two = one + one
    _hidden_matmul(t, hs, w_hh_t, gh, lanes)
    for q in range(4 * HL):  # each gate's block is a contiguous run of H·L
        a = gi[t, q] + (gh[0, q] + b_hh[q])
        if 2 * HL <= q < 3 * HL:
            gates[t, q] = two / (one + exp_of(-(a + a))) - one
        else:
            gates[t, q] = one / (one + exp_of(-a))
    for q in range(HL):
        cs[t + 1, q] = gates[t, HL + q] * cs[t, q] + gates[t, q] * gates[t, 2 * HL + q]
    for q in range(HL):
        tanh_cs[t, q] = two / (one + exp_of(-(cs[t + 1, q] + cs[t + 1, q]))) - one
    for q in range(HL):
        hs[t + 1, q] = gates[t, 3 * HL + q] * tanh_cs[t, q]


@njit(**_inline)
def _gru_step(t, gi, w_hh_t, b_hh, gh, one, hs, gates, lanes):
    """r, z = σ(gi + gh); n = tanh(gi_n + r hn), hn = W_hn h + b_hn; h' = (h - n) z + n. gates: r, z, n, hn."""
    HL = hs.shape[1]
    two = one + one
    _hidden_matmul(t, hs, w_hh_t, gh, lanes)
    for q in range(2 * HL):  # r and z
        gates[t, q] = one / (one + exp_of(-(gi[t, q] + (gh[0, q] + b_hh[q]))))
    for q in range(HL):
        gates[t, 3 * HL + q] = gh[0, 2 * HL + q] + b_hh[2 * HL + q]
    for q in range(HL):
        a = gi[t, 2 * HL + q] + gates[t, q] * gates[t, 3 * HL + q]
        gates[t, 2 * HL + q] = two / (one + exp_of(-(a + a))) - one
    for q in range(HL):
        n = gates[t, 2 * HL + q]
        hs[t + 1, q] = (hs[t, q] - n) * gates[t, HL + q] + n


@njit(**_inline)
def _rnn_step_back(t, dhs, dh_next, hs, w_hh, relu, one, dgh, lanes):
    """dgh[t] = ∂L/∂(pre-activation); dh_next = its gradient into h_{t-1}. hs (T + 1, H·L): h_t in row t + 1."""
    zero = one - one
    for q in range(hs.shape[1]):
        dh = dhs[t, q] + dh_next[0, q]
        hv = hs[t + 1, q]
        if relu:
            dgh[t, q] = dh if hv > zero else zero
        else:
            dgh[t, q] = dh * (one - hv * hv)
        dh_next[0, q] = zero
    _outer_sum(dgh, t, w_hh, dh_next, 0, lanes)


@njit(**_inline)
def _lstm_step_back(t, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh, lanes):
    """cs (T + 1, H·L): c_t in row t + 1, c_{-1} = 0 in row 0."""
    HL = cs.shape[1]
    zero = one - one
    for q in range(HL):
        i, f, g, o = gates[t, q], gates[t, HL + q], gates[t, 2 * HL + q], gates[t, 3 * HL + q]
        dh = dhs[t, q] + dh_next[0, q]
        tanh_c = tanh_cs[t, q]
        c_prev = cs[t, q]
        dc = dc_next[0, q] + dh * o * (one - tanh_c * tanh_c)
        dgh[t, q] = dc * g * i * (one - i)
        dgh[t, HL + q] = dc * c_prev * f * (one - f)
        dgh[t, 2 * HL + q] = dc * i * (one - g * g)
        dgh[t, 3 * HL + q] = dh * tanh_c * o * (one - o)
        dc_next[0, q] = dc * f
        dh_next[0, q] = zero
    _outer_sum(dgh, t, w_hh, dh_next, 0, lanes)


@njit(**_inline)
def _gru_step_back(t, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, direct, lanes):
    """dgi and dgh differ in the n block: gi_n enters n directly, the hidden part through r * (·). hs (T + 1,
    H·L): h_{t-1} in row t."""
    HL = hs.shape[1]
    zero = one - one
    for q in range(HL):
        r, z, n, hn = gates[t, q], gates[t, HL + q], gates[t, 2 * HL + q], gates[t, 3 * HL + q]
        dh = dhs[t, q] + dh_next[0, q]
        h_prev = hs[t, q]
        dn = dh * (one - z) * (one - n * n)  # ∂L/∂(pre-tanh n)
        dr = dn * hn * r * (one - r)
        dz = dh * (h_prev - n) * z * (one - z)
        dgi[t, q], dgi[t, HL + q], dgi[t, 2 * HL + q] = dr, dz, dn
        dgh[t, q], dgh[t, HL + q], dgh[t, 2 * HL + q] = dr, dz, dn * r
        direct[0, q] = dh * z  # the direct path h' = ... + z h
        dh_next[0, q] = zero
    _outer_sum(dgh, t, w_hh, dh_next, 0, lanes)
    for q in range(HL):
        dh_next[0, q] = direct[0, q] + dh_next[0, q]


@njit(**_inline)
def _row_max(logits, n, tops, best, lanes):
    """tops[n] (L,) = row n's max per lane, best (L,) = its first index (argmax's)."""
    L = _width(lanes)
    V = logits.shape[1] // L
    if len(lanes) == 1:  # one lane: the running max in a register (a 7-long run cannot vectorize)
        top, first = logits[n, 0], 0
        for v in range(1, V):
            if logits[n, v] > top:
                top, first = logits[n, v], v
        tops[n, 0], best[0] = top, first
    else:
        for k in range(L):
            tops[n, k] = logits[n, k]
        for v in range(V):
            for k in range(L):
                tops[n, k] = np.maximum(tops[n, k], logits[n, v * L + k])  # a select (builtin max branches)
        for v in range(V - 1, -1, -1):  # the lowest v at the max wins: a select per lane, no branch
            for k in range(L):
                best[k] = v if logits[n, v * L + k] == tops[n, k] else best[k]


@njit(**_inline)
def _softmax_rows(logits, best_target, probs, tops, best, right, lanes):
    """probs (T, V·L) = exp(logits - each row's max), unnormalised; tops (T, L): the max; right (L,): how
    often the first index of the max is the target's."""
    L = _width(lanes)
    for k in range(L):
        right[k] = 0
    for n in range(logits.shape[0]):
        _row_max(logits, n, tops, best, lanes)
        for k in range(L):
            right[k] += best[k] == best_target[n]
        for v in range(logits.shape[1] // L):
            for k in range(L):
                probs[n, v * L + k] = logits[n, v * L + k] - tops[n, k]
    flat = probs.reshape(-1)
    for q in range(flat.size):  # one long run: vectorized at any width
        flat[q] = exp_of(flat[q])


@njit(**_inline)
def _row_sums(probs, n, denom, lanes):
    """denom (L,) = Σ_v probs[n, v] per lane (v ascending)."""
    L = _width(lanes)
    if len(lanes) == 1:  # one lane: in a register
        d = probs[n, 0] - probs[n, 0]
        for v in range(probs.shape[1]):
            d += probs[n, v]
        denom[0] = d
    else:
        for k in range(L):
            denom[k] = 0
        for v in range(probs.shape[1] // L):
            for k in range(L):
                denom[k] += probs[n, v * L + k]


@njit(**_inline)
def _head_loss(logits, targets, best_target, mass, scale, probs, dlogits, tops, denom, best, right, total, lanes):
    """Softmax cross-entropy of logits (T, V·L) against the shared targets (T, V): writes probs, dlogits
    (∂ loss / ∂ logits, times ``scale`` = 1/T), each lane's summed loss ``total`` (float64: ~1000 rows) and
    correct count ``right``."""
    L = _width(lanes)
    T, V = logits.shape[0], logits.shape[1] // L
    _softmax_rows(logits, best_target, probs, tops, best, right, lanes)
    for k in range(L):
        total[k] = 0.0
    for n in range(T):
        _row_sums(probs, n, denom, lanes)
        for k in range(L):  # -Σ_v y_v log p_v = Σ_v y_v log Σ - Σ_v y_v (logit_v - top)
            total[k] += float(mass[n]) * float(np.log(denom[k]))
        for v in range(V):
            t_nv = targets[n, v]
            for k in range(L):
                probs[n, v * L + k] /= denom[k]
                if t_nv != 0:
                    total[k] -= float(t_nv) * float(logits[n, v * L + k] - tops[n, k])
                dlogits[n, v * L + k] = (probs[n, v * L + k] * mass[n] - t_nv) * scale


@njit(**_inline)
def _into_hidden(dlogits, w_out, dhs, lanes):
    """dhs (T, H·L) = dlogits W_out; w_out (V, H·L)."""
    for n in range(dhs.shape[0]):
        for q in range(dhs.shape[1]):
            dhs[n, q] = 0
        _outer_sum(dlogits, n, w_out, dhs, n, lanes)


@njit(**_inline)
def _weight_grads(x, dout, dw, db, lanes):
    """dw (G, P·L) = Σ_n dout[n, g] x[n, p]; db (G·L,) = Σ_n dout[n] (n ascending); x (N, P·L)."""
    L = _width(lanes)
    G, P = dw.shape[0], dw.shape[1] // L
    dw[:] = 0
    db[:] = 0
    for n in range(dout.shape[0]):
        for q in range(db.shape[0]):
            db[q] += dout[n, q]
        for g in range(G):
            for p in range(P):
                for k in range(L):
                    dw[g, p * L + k] += dout[n, g * L + k] * x[n, p * L + k]


@njit(**_inline)
def _weight_grads_shared(xs, dout, dw, db, lanes):
    """As :func:`_weight_grads` with xs (N, I) shared by the lanes; a zero input adds nothing."""
    L = _width(lanes)
    N, I = xs.shape
    dw[:] = 0
    db[:] = 0
    for n in range(N):
        for q in range(db.shape[0]):
            db[q] += dout[n, q]
        for i in range(I):
            x = xs[n, i]
            if x != 0:
                for g in range(dw.shape[0]):
                    for k in range(L):
                        dw[g, i * L + k] += dout[n, g * L + k] * x


@njit(**_inline)
def _adam(param, grad, m, v, a, lanes):
    """torch's Adam rule per element (no weight decay, not amsgrad), in its operation order; a (6, L): each
    lane's scalars (compiled.adam_scalars)."""
    L = _width(lanes)
    p, g_, mm, vv = param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
    for r in range(p.size // L):
        for k in range(L):
            q = r * L + k
            g = g_[q]
            mm[q] += a[0, k] * (g - mm[q])  # exp_avg.lerp_(grad, 1 - beta1)
            vv[q] = vv[q] * a[1, k] + a[2, k] * (g * g)  # mul_(beta2).addcmul_(g, g, 1 - beta2)
            p[q] -= a[3, k] * (mm[q] / (np.sqrt(vv[q]) / a[4, k] + a[5, k]))  # addcdiv_


@njit(**_compiled)
def _shared_targets(targets):
    """The targets are shared by every lane: each position's argmax and mass, once."""
    T, V = targets.shape
    best, mass = np.zeros(T, np.int32), np.empty(T, targets.dtype)
    for n in range(T):
        s = targets[n, 0] - targets[n, 0]
        for v in range(V):
            if targets[n, v] > targets[n, best[n]]:
                best[n] = v
            s += targets[n, v]
        mass[n] = s
    return best, mass


@njit(**_phase)
def _forward(family, relu, one, gi, w_hh_t, b_hh, gh, hs, cs, tanh_cs, gates, lanes):
    """The recurrence over every step from a zero state, into hs[1:] (and cs[1:]; the family branch, once)."""
    hs[0] = 0
    cs[0] = 0
    for t in range(gi.shape[0]):
        if family == 1:
            _lstm_step(t, gi, w_hh_t, b_hh, gh, one, hs, cs, tanh_cs, gates, lanes)
        elif family == 2:
            _gru_step(t, gi, w_hh_t, b_hh, gh, one, hs, gates, lanes)
        else:
            _rnn_step(t, gi, w_hh_t, b_hh, gh, relu, one, hs, lanes)


@njit(**_phase)
def _head(hs, w_out, w_out_t, b_out, targets, best_target, mass, scale, logits, probs, dlogits, tops, denom, best,
          right, total, dhs, lanes):
    """The head over every step: logits, softmax cross-entropy (loss, probs, dlogits) and dhs = dlogits W_out."""
    _project(hs[1:], w_out, w_out_t, b_out, logits, lanes)
    _head_loss(logits, targets, best_target, mass, scale, probs, dlogits, tops, denom, best, right, total, lanes)
    _into_hidden(dlogits, w_out, dhs, lanes)


@njit(**_phase)
def _backward(family, relu, one, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next, dc_next, dgh, dgi, lanes):
    """BPTT from the last step: dgh = ∂L/∂(W_hh h + b_hh); dgi = ∂L/∂gi, which differs for the gru's n
    (for rnn and lstm the caller uses dgh for both)."""
    dh_next[:] = 0
    dc_next[:] = 0
    for t in range(dhs.shape[0] - 1, -1, -1):
        if family == 1:
            _lstm_step_back(t, dhs, dh_next, dc_next, cs, tanh_cs, gates, w_hh, one, dgh, lanes)
        elif family == 2:
            _gru_step_back(t, dhs, dh_next, hs, gates, w_hh, one, dgi, dgh, dc_next, lanes)
        else:
            _rnn_step_back(t, dhs, dh_next, hs, w_hh, relu, one, dgh, lanes)


@njit(**_phase)
def _gradients(family, xs, hs, dgh, dgi, dlogits, grads, lanes):
    """The weight gradients of one epoch: head, hidden and input projections; hs (T + 1, H·L) from h_{-1} = 0."""
    _weight_grads(hs[1:], dlogits, grads[4], grads[5], lanes)
    _weight_grads(hs[:-1], dgh, grads[1], grads[3], lanes)
    _weight_grads_shared(xs, dgi if family == 2 else dgh, grads[0], grads[2], lanes)


@njit(**_compiled)
def _adam_all(params, grads, means, squares, a, lanes):
    """Each of the six parameters (a tuple of mixed ranks: indexed with constants)."""
    _adam(params[0], grads[0], means[0], squares[0], a, lanes)
    _adam(params[1], grads[1], means[1], squares[1], a, lanes)
    _adam(params[2], grads[2], means[2], squares[2], a, lanes)
    _adam(params[3], grads[3], means[3], squares[3], a, lanes)
    _adam(params[4], grads[4], means[4], squares[4], a, lanes)
    _adam(params[5], grads[5], means[5], squares[5], a, lanes)


@njit(**_compiled)
def _zeros_like_all(arrays):
    return (np.zeros_like(arrays[0]), np.zeros_like(arrays[1]), np.zeros_like(arrays[2]),
            np.zeros_like(arrays[3]), np.zeros_like(arrays[4]), np.zeros_like(arrays[5]))


@njit(**_compiled)
def _epoch_losses(epoch, total, right, T, losses, correct):
    """Record each lane's mean loss and correct count; False when a loss is not finite."""
    finite = True
    for k in range(total.shape[0]):
        losses[epoch, k], correct[epoch, k] = total[k] / T, right[k]
        finite = finite and np.isfinite(losses[epoch, k])
    return finite


@njit(**_compiled)
def train_block(lanes, family, relu, one, xs, targets, scale, w_ih, w_hh, b_ih, b_hh, w_out, b_out, adam, losses,
                correct, probs):
    """Every epoch of L models in place: w_ih (G, I·L), w_hh (G, H·L), b_ih/b_hh (G·L,), w_out (V, H·L),
    b_out (V·L,), adam (E, 6, L), losses/correct (E, L), probs (T, V·L): the last forward pass. Returns the
    epochs every lane completed (fewer than E when a loss is not finite: no step is taken then)."""
    L = _width(lanes)
    T, I = xs.shape
    G, HL, V, dtype = w_hh.shape[0], w_hh.shape[1], w_out.shape[0], xs.dtype
    params = (w_ih, w_hh, b_ih, b_hh, w_out, b_out)
    grads, means, squares = _zeros_like_all(params), _zeros_like_all(params), _zeros_like_all(params)
    w_ih_t, w_hh_t, w_out_t = np.empty((I, G * L), dtype), np.empty((HL // L, G * L), dtype), \
        np.empty((HL // L, V * L), dtype)
    best_target, mass = _shared_targets(targets)
    gi, gh, dh_next, dc_next = np.empty((T, G * L), dtype), np.empty((1, G * L), dtype), np.empty((1, HL), dtype), \
        np.empty((1, HL), dtype)
    hs, cs, tanh_cs = np.empty((T + 1, HL), dtype), np.empty((T + 1, HL), dtype), np.empty((T, HL), dtype)
    gates, dgh, dgi = np.empty((T, 4 * HL), dtype), np.empty((T, G * L), dtype), np.empty((T, G * L), dtype)
    logits, dlogits, dhs = np.empty((T, V * L), dtype), np.empty((T, V * L), dtype), np.empty((T, HL), dtype)
    tops = np.empty((T, L), dtype)
    denom, best = np.empty(L, dtype), np.zeros(L, np.int32)
    right, total = np.empty(L, np.int64), np.empty(L, np.float64)
    for epoch in range(losses.shape[0]):
        _transpose(w_ih, w_ih_t, lanes)
        _transpose(w_hh, w_hh_t, lanes)
        _transpose(w_out, w_out_t, lanes)
        _project_shared(xs, w_ih_t, b_ih, gi, lanes)
        _forward(family, relu, one, gi, w_hh_t, b_hh, gh, hs, cs, tanh_cs, gates, lanes)
        _head(hs, w_out, w_out_t, b_out, targets, best_target, mass, scale, logits, probs, dlogits, tops, denom, best,
              right, total, dhs, lanes)
        if not _epoch_losses(epoch, total, right, T, losses, correct):
            return epoch
        _backward(family, relu, one, dhs, w_hh, hs, cs, tanh_cs, gates, dh_next, dc_next, dgh, dgi, lanes)
        _gradients(family, xs, hs, dgh, dgi, dlogits, grads, lanes)
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
