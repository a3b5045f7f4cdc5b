"""The lanes layout of the compiled trainer (``lane_trainer.py``) and the products written over it.

Every array is 2-D, rows by (column, lane), the lane innermost: entry (r, c) of model k is ``a[r, c * L + k]``
(``w_hh`` (G, H·L), ``hs`` (T + 1, H·L), biases (G·L,)). Each loop's innermost run over the L models is
contiguous, so LLVM turns it into vector instructions: one instruction advances several models. Nothing
crosses lanes, so each model's arithmetic is the same whatever L is; with L = 1 the layout is torch's.

``lanes`` (:func:`lane_tag`) tells the compiler which width: a 1-tuple compiles L = 1 in, so the lane loops
vanish and the loop above each (over gates or units, contiguous too) is the one LLVM vectorizes; a 2-tuple
carries L at run time (a constant 32 is unrolled into scalar code before the loop vectorizer sees it:
measured 2.4x slower). Every sum runs in the same order at every width, so the widths agree bit for bit: no
fast-math (LLVM may not reassociate or fuse), and ``error_model="numpy"`` only drops the zero-divisor check
that would keep the loops scalar (no divisor here can be zero: each is 1 + exp(·), a softmax sum or Adam's
denominator).

Matrix products are sums of outer products, ``out[g] += x[p] w_t[p, g]`` with p ascending, over transposed
copies of the weights where the forward pass needs them (``*_t`` (P, G·L), refreshed each epoch): the
innermost run is then (g, lane), contiguous, and no product is a horizontal reduction.
"""
from __future__ import annotations

from numba import njit
from numba.core.compiler import Compiler

from .elements import INLINE
from .elements import adam as adam_element
from .simd import load, store, vector_width


class DistinctArrays(Compiler):
    """numba's pipeline with every array argument marked ``noalias`` for LLVM. True of the trainer's phase
    functions: each writes only buffers of its own (``workspace.workspace`` makes them) or a model's own
    parameters, and arrays that may share memory (the inputs and targets) are only read. It lets the loop
    vectorizer drop the run-time overlap checks it would otherwise run before every inner loop (at 32
    lanes, one per 32 multiply-adds)."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()


COMPILED = dict(cache=True, error_model="numpy")
PHASE = dict(cache=True, error_model="numpy", pipeline_class=DistinctArrays)

LANE_MULTIPLE = 32
"""A block of lanes is one lane or a multiple of this: the tiles (:func:`tile`) cover 32 float32 lanes (16
float64) at a time."""
GRAD_ROWS = 16
"""Rows of a weight gradient's sum over the steps taken per pass of a tile: 16 rows of both factors stay in
L1 (measured fastest of 16, 64 and 256 here)."""


def lane_tag(width: int) -> tuple:
    """The ``lanes`` argument for ``width`` models per block: (1,) compiles one lane in, (width, width)
    leaves the width to run time."""
    if width != 1 and (width < 1 or width % LANE_MULTIPLE):
        raise ValueError(f"a block of lanes is 1 or a multiple of {LANE_MULTIPLE} models, not {width}")
    return (1,) if width == 1 else (width, width)


@njit(**INLINE)
def width(lanes):
    return 1 if len(lanes) == 1 else lanes[0]


@njit(**INLINE)
def transpose(w, w_t, lanes):
    """w_t (P, G·L) = w (G, P·L) with its two axes swapped, lane by lane."""
    L = width(lanes)
    G, P = w.shape[0], w_t.shape[0]
    for g in range(G):
        for p in range(P):
            for k in range(L):
                w_t[p, g * L + k] = w[g, p * L + k]


@njit(**INLINE)
def tile(out, m, o, d, s, s_at, t, t_at, steps):
    """Two rows of 4 Vecs (32 float32 lanes or 16 float64) of out[m] summed in registers: with s_at = (r, c,
    dr, dc) and t_at likewise, for j ascending, out[m, o : o + 4n] += s[r + j dr, c + j dc : + 4n] * t[...at
    t_at...], and the same d columns to the right in out and t (d = 0: one row, done twice). The left factor
    is loaded once for both rows: 12 loads per 8 multiply-adds, no store until the sum ends."""
    s_r, s_c, s_dr, s_dc = s_at
    t_r, t_c, t_dr, t_dc = t_at
    n = vector_width(out)
    a0, a1, a2, a3 = load(out, m, o), load(out, m, o + n), load(out, m, o + 2 * n), load(out, m, o + 3 * n)
    e = o + d
    b0, b1, b2, b3 = load(out, m, e), load(out, m, e + n), load(out, m, e + 2 * n), load(out, m, e + 3 * n)
    for j in range(steps):
        r, c = s_r + j * s_dr, s_c + j * s_dc
        x0, x1, x2, x3 = load(s, r, c), load(s, r, c + n), load(s, r, c + 2 * n), load(s, r, c + 3 * n)
        r, c = t_r + j * t_dr, t_c + j * t_dc
        a0, a1 = a0 + x0 * load(t, r, c), a1 + x1 * load(t, r, c + n)
        a2, a3 = a2 + x2 * load(t, r, c + 2 * n), a3 + x3 * load(t, r, c + 3 * n)
        c += d
        b0, b1 = b0 + x0 * load(t, r, c), b1 + x1 * load(t, r, c + n)
        b2, b3 = b2 + x2 * load(t, r, c + 2 * n), b3 + x3 * load(t, r, c + 3 * n)
    store(out, m, o, a0), store(out, m, o + n, a1), store(out, m, o + 2 * n, a2), store(out, m, o + 3 * n, a3)
    store(out, m, e, b0), store(out, m, e + n, b1), store(out, m, e + 2 * n, b2), store(out, m, e + 3 * n, b3)


@njit(**INLINE)
def outer_sum(x, n, w_t, out, m, lanes):
    """out[m] (G·L) += Σ_p x[n, p] w_t[p] (p ascending); x (N, P·L), w_t (P, G·L), out (M, G·L)."""
    L = width(lanes)
    P, G = w_t.shape[0], w_t.shape[1] // L
    if len(lanes) == 1 and G < vector_width(out):  # a run of G would be scalar: each sum in a register
        for g in range(G):
            acc = out[m, g]
            for p in range(P):
                acc += x[n, p] * w_t[p, g]
            out[m, g] = acc
    elif len(lanes) == 1:  # a vectorized run over g per p
        for p in range(P):
            for g in range(G):
                out[m, g] += x[n, p] * w_t[p, g]
    else:  # rows g and g + 1 at once, the sum over p in registers
        for k in range(0, L, 4 * vector_width(out)):
            for g in range(0, G, 2):
                d = L if g + 1 < G else 0
                tile(out, m, g * L + k, d, x, (n, k, 0, L), w_t, (0, g * L + k, 1, 0), P)


@njit(**INLINE)
def project(x, w, w_t, b, out, lanes):
    """out (N, G·L) = b + Σ_p x[n, p] w[:, p] (p ascending); x (N, P·L): each lane its own input; w (G, P·L)
    and its transpose w_t (P, G·L) (one lane's head: ``step_head.steps_logits``)."""
    for n in range(out.shape[0]):
        for q in range(out.shape[1]):
            out[n, q] = b[q]
        outer_sum(x, n, w_t, out, n, lanes)


@njit(**INLINE)
def project_shared(xs, n0, rows, w_t, b, out):
    """out[m] (G·L) = b + Σ_i xs[n0 + m, i] w_t[i] (i ascending) for m < rows; xs (N, I) is shared by the
    lanes. A zero input adds nothing (+0 is exact), so a one-hot row costs one pass, not I. (A list of each
    row's nonzero inputs, in place of the test, measured 15-20% slower at 32 lanes.)"""
    for m in range(rows):
        for q in range(out.shape[1]):
            out[m, q] = b[q]
        for i in range(xs.shape[1]):
            x = xs[n0 + m, i]
            if x != 0:
                for q in range(out.shape[1]):
                    out[m, q] += x * w_t[i, q]


@njit(**INLINE)
def hidden_matmul(t, hs, w_hh_t, gh, lanes):
    """gh (1, G·L) = W_hh h_{t-1} from zero; hs (T + 1, H·L) holds h_{t-1} in row t (row 0: h_{-1} = 0)."""
    for q in range(gh.shape[1]):
        gh[0, q] = 0
    outer_sum(hs, t, w_hh_t, gh, 0, lanes)


@njit(**INLINE)
def weight_grads(x, dout, dw, db, lanes):
    """dw (G, P·L) += Σ_n dout[n, g] x[n, p]; db (G·L,) += Σ_n dout[n] (n ascending); x (N, P·L)."""
    L = width(lanes)
    G, P, N = dw.shape[0], dw.shape[1] // L, dout.shape[0]
    for n in range(N):
        for q in range(db.shape[0]):
            db[q] += dout[n, q]
    if len(lanes) == 1:  # four rows per pass over dw (the same sums in the same order, a quarter the stores)
        quads = N - N % 4
        for n in range(0, quads, 4):
            for g in range(G):
                d0, d1, d2, d3 = dout[n, g], dout[n + 1, g], dout[n + 2, g], dout[n + 3, g]
                for p in range(P):
                    dw[g, p] = (((dw[g, p] + d0 * x[n, p]) + d1 * x[n + 1, p]) + d2 * x[n + 2, p]) + d3 * x[n + 3, p]
        for n in range(quads, N):
            for g in range(G):
                for p in range(P):
                    dw[g, p] += dout[n, g] * x[n, p]
        return
    for n0 in range(0, N, GRAD_ROWS):  # columns p and p + 1 at once, GRAD_ROWS rows of the sum in registers
        rows = min(GRAD_ROWS, N - n0)
        for g in range(G):
            for k in range(0, L, 4 * vector_width(dw)):
                for p in range(0, P, 2):
                    d = L if p + 1 < P else 0
                    tile(dw, g, p * L + k, d, dout, (n0, g * L + k, 1, 0), x, (n0, p * L + k, 1, 0), rows)


@njit(**INLINE)
def weight_grads_shared(xs, dout, dw, db, lanes):
    """As :func:`weight_grads` (adds) with xs (N, I) shared by the lanes; a zero input adds nothing."""
    L = width(lanes)
    for n in range(dout.shape[0]):
        for q in range(db.shape[0]):
            db[q] += dout[n, q]
        for i in range(xs.shape[1]):
            x = xs[n, i]
            if x != 0:
                for g in range(dw.shape[0]):
                    for k in range(L):
                        dw[g, i * L + k] += dout[n, g * L + k] * x


@njit(**INLINE)
def adam(param, grad, m, v, a, lanes):
    """torch's Adam rule per element (no weight decay, not amsgrad), in its operation order; a (6, L): each
    lane's scalars (compiled.adam_table)."""
    L = width(lanes)
    p, g_, mm, vv = param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
    for r in range(p.size // L):
        for k in range(L):
            q = r * L + k
            p[q], mm[q], vv[q] = adam_element(p[q], g_[q], mm[q], vv[q], a[0, k], a[1, k], a[2, k], a[3, k], a[4, k],
                                              a[5, k])
