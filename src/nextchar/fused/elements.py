"""The trainers' element math, written once for every compiled dialect: σ and tanh, each family's activated
tail and its hand-derived backward side by side, Adam's element rule and softmax cross-entropy's element.
The CPU code (``lane_cells.py``, ``lanes.adam``, ``lane_loss.py``, ``step_head.py`` and the fused engine's
``kernels.py``) inlines the numba versions (``sigmoid``, ``tanh``, ...: exp is ``elementary.exp_of``,
vectorizable); the GPU trainer (``cuda_trainer.py``) compiles the same source for CUDA (``gpu_sigmoid``, ...:
exp and sqrt from libdevice). Each operand order is the one every caller had, so no bit changed. ``one`` is
1 in the arrays' dtype (a bare 1.0 would promote float32 to float64).

    σ(a) = 1 / (1 + e^{-a});   tanh(a) = 2 σ(2a) - 1
    lstm:  c' = f c + i g;  h' = o tanh(c')
           dc = dc' + dh o (1 - tanh²c');  di = dc g i(1 - i);  df = dc c f(1 - f);  dg = dc i (1 - g²);
           do = dh tanh(c') o(1 - o);  ∂L/∂c = dc f          (di .. do: gradients of the pre-activations)
    gru:   n = tanh(gi_n + r hn);  h' = (h - n) z + n
           dn = dh (1 - z)(1 - n²);  dr = dn hn r(1 - r);  dz = dh (h - n) z(1 - z);  direct ∂L/∂h = dh z
    rnn:   da = dh (1 - h'²) for tanh, dh [h' > 0] for relu
    Adam:  m' = m + (1 - β1)(g - m);  v' = v β2 + (1 - β2) g²;  p' = p - (lr / (1 - β1^t)) m' / (√v' / √(1 - β2^t) + ε)
    softmax cross-entropy: ∂/∂logit = (p Σy - y) · scale;  loss = Σy log Σ_v e^{logit_v - max} - Σ y (logit - max)

Tested per family, value and gradient, against ``cells.py`` under autograd (``tests/fused/test_lane_cells.py``,
the CPU dialect; ``tests/fused/test_cuda_trainer.py`` runs the GPU one on numba's simulator).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from .elementary import exp_of

INLINE = dict(cache=True, error_model="numpy", inline="always")
"""numba's options for a function inlined into its callers' loops (``error_model="numpy"``: no zero-divisor
check to keep a loop scalar; no divisor here can be zero)."""


def _dialect(exp, sqrt, jit) -> tuple:
    """The element functions compiled by ``jit`` with ``exp`` and ``sqrt`` as their exponential and root."""

    @jit
    def sigmoid_from(e, one):
        """σ(a) from e = exp(-a) (the fused engine takes a step's exponentials in one batched pass)."""
        return one / (one + e)

    @jit
    def tanh_from(e, one):
        """tanh(a) = 2 σ(2a) - 1 from e = exp(-2a)."""
        return (one + one) / (one + e) - one

    @jit
    def sigmoid(a, one):
        return one / (one + exp(-a))

    @jit
    def tanh(a, one):
        return (one + one) / (one + exp(-(a + a))) - one

    @jit
    def lstm_cell(i, f, g, c_prev):
        """c' = f c + i g."""
        return f * c_prev + i * g

    @jit
    def lstm_tail(i, f, g, o, c_prev, one):
        """(c', tanh c', h')."""
        c = lstm_cell(i, f, g, c_prev)
        tanh_c = tanh(c, one)
        return c, tanh_c, o * tanh_c

    @jit
    def lstm_back(dh, dc_next, i, f, g, o, tanh_c, c_prev, one):
        """(di, df, dg, do, ∂L/∂c): the gates' pre-activation gradients and the cell state's."""
        dc = dc_next + dh * o * (one - tanh_c * tanh_c)
        return (dc * g * i * (one - i), dc * c_prev * f * (one - f), dc * i * (one - g * g),
                dh * tanh_c * o * (one - o), dc * f)

    @jit
    def gru_candidate_input(gi_n, r, hn):
        """The pre-tanh sum of n: gi_n + r (W_hn h + b_hn)."""
        return gi_n + r * hn

    @jit
    def gru_mix(h_prev, n, z):
        """h' = (h - n) z + n (ATen's operand order)."""
        return (h_prev - n) * z + n

    @jit
    def gru_tail(gi_n, r, hn, z, h_prev, one):
        """(n, h')."""
        n = tanh(gru_candidate_input(gi_n, r, hn), one)
        return n, gru_mix(h_prev, n, z)

    @jit
    def gru_back(dh, r, z, n, hn, h_prev, one):
        """(dr, dz, dn, direct): pre-activation gradients (dn of the pre-tanh sum) and dh z, the direct path."""
        dn = dh * (one - z) * (one - n * n)
        return dn * hn * r * (one - r), dh * (h_prev - n) * z * (one - z), dn, dh * z

    @jit
    def rnn_back(dh, h_new, relu, one):
        """The pre-activation's gradient: dh (1 - h'²) for tanh, dh where h' > 0 for relu."""
        zero = one - one
        if relu:
            return dh if h_new > zero else zero
        return dh * (one - h_new * h_new)

    @jit
    def adam(param, grad, mean, square, one_minus_beta1, beta2, one_minus_beta2, lr_over_bias1, sqrt_bias2, eps):
        """torch's Adam rule for one element, in its operation order (no weight decay, not amsgrad):
        (param', mean', square'). The scalars are torch's Python-float ones (``compiled.adam_table``)."""
        mean = mean + one_minus_beta1 * (grad - mean)  # exp_avg.lerp_(grad, 1 - beta1)
        square = square * beta2 + one_minus_beta2 * (grad * grad)  # mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        return param - lr_over_bias1 * (mean / (sqrt(square) / sqrt_bias2 + eps)), mean, square  # addcdiv_

    @jit
    def cross_entropy_gradient(prob, mass, target, scale):
        """∂ loss / ∂ logit of softmax cross-entropy against a soft target (``mass`` = the row's Σ target)."""
        return (prob * mass - target) * scale

    @jit
    def cross_entropy_term(logit, top, target):
        """-y (logit - max), the row's loss less y log Σ (added once per row), in float64."""
        return -(float(target) * float(logit - top))

    return (sigmoid_from, tanh_from, sigmoid, tanh, lstm_cell, lstm_tail, lstm_back, gru_candidate_input, gru_mix,
            gru_tail, gru_back, rnn_back, adam, cross_entropy_gradient, cross_entropy_term)


# numba reads module globals, not attributes of an object: each dialect's functions are names of their own.
# The CPU trainer's: inlined into its loops, exp vectorizable (``elementary.exp_of``).
(sigmoid_from, tanh_from, sigmoid, tanh, lstm_cell, lstm_tail, lstm_back, gru_candidate_input, gru_mix, gru_tail,
 gru_back, rnn_back, adam, cross_entropy_gradient, cross_entropy_term) = _dialect(exp_of, np.sqrt, njit(**INLINE))
# The GPU trainer's: compiled for CUDA where its kernel calls them, exp and sqrt from libdevice.
(_, _, gpu_sigmoid, gpu_tanh, _, gpu_lstm_tail, gpu_lstm_back, _, _, gpu_gru_tail, gpu_gru_back, gpu_rnn_back,
 gpu_adam, gpu_cross_entropy_gradient, gpu_cross_entropy_term) = _dialect(math.exp, math.sqrt, register_jitable)
