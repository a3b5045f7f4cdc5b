"""The minimal families' parallel form: a window of mingru or minlstm steps from its coefficients, all at once.

Their gates read the input alone, so each step is h_t = a_t h_{t-1} + b_t with every a_t and b_t known at
once from the window's input projections (mingru: a = 1 - z, b = z h~; minlstm: a = f', b = i' h~), and
every h_t stays positive (g > 0). Two ways to run that recurrence, one per kind of machine:

- :func:`log_scan`, Heinsen's scan (arXiv 2311.06281; Feng et al., appendix B), parallel over time: in log
  space, log h_t = A_t + log Σ_{s <= t} exp(log b_s - A_s) with A_t = Σ_{s <= t} log a_s: one ``cumsum`` and
  one ``logcumsumexp``, a carried state h_{-1} entering as one more log value before the first step (its
  coefficient's log is 0). The running sums are taken in float64. For GPUs, where it is a few parallel
  kernels.
- :func:`linear_scan`, the same recurrence as one multiply-add per step over the whole (batch x hidden)
  slice, and its exact backward (∂L/∂h carried back by the same multiply-add): on a CPU a step costs
  microseconds, while ``logcumsumexp`` costs ~14 ns an element forward and ~40 backward (a window of
  32 x 128 x 256, forward and backward: 133 ms against 4.3 ms).

:func:`scan` picks by device. Both equal the sequential cell (``cells.mingru_step`` / ``minlstm_step``) to
float round-off, and a window-by-window run with the state carried equals one long call
(``tests/test_scan.py`` states both, for each).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .cells import g, log_g


def coefficients(family: str, gi: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b) of every step from gi (T, ..., G*H), each (T, ..., H): the blocks as the cell's."""
    if family == "mingru":
        candidate, gate = gi.chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        return 1 - z, z * g(candidate)
    candidate, f, i = gi.chunk(3, dim=-1)
    f, i = torch.sigmoid(f), torch.sigmoid(i)
    return f / (f + i), i / (f + i) * g(candidate)


def log_coefficients(family: str, gi: Tensor) -> tuple[Tensor, Tensor]:
    """(log a, log b) of every step from gi (T, ..., G*H), each (T, ..., H): the blocks as the cell's."""
    if family == "mingru":
        candidate, gate = gi.chunk(2, dim=-1)
        # log(1 - z) = log σ(-gate) = -softplus(gate); log z = -softplus(-gate)
        return -F.softplus(gate), -F.softplus(-gate) + log_g(candidate)
    candidate, f, i = gi.chunk(3, dim=-1)
    # log f' = log(f / (f + i)) = -softplus(log i - log f), with log σ(x) = -softplus(-x); log i' likewise
    log_i_over_f = F.softplus(-f) - F.softplus(-i)
    return -F.softplus(log_i_over_f), -F.softplus(-log_i_over_f) + log_g(candidate)


def log_scan(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for every t of the leading (time) axis, from h0 (None: no state before the
    first step, h_0 = b_0); log_a, log_b (T, ..., H), h0 (..., H) positive. Returns h (T, ..., H).

    The two running sums are taken in float64 whatever the dtype: A_t grows to ~T |log a| (~10^3 over a
    long window), and float32 would keep only ~4 digits of h beside it (measured: 1e-4 of the logits and
    2e-3 of the gradients over 999 steps); in float64 the scan meets the sequential cell to float32
    round-off of its inputs."""
    if h0 is not None:
        log_a = torch.cat((torch.zeros_like(h0)[None], log_a))
        log_b = torch.cat((torch.log(h0)[None], log_b))
    a_star = log_a.to(torch.float64).cumsum(0)
    h = torch.exp(a_star + torch.logcumsumexp(log_b.to(torch.float64) - a_star, 0)).to(log_a.dtype)
    return h if h0 is None else h[1:]


class _LinearScan(torch.autograd.Function):
    """h_t = a_t h_{t-1} + b_t over the leading axis, one multiply-add per step in place; its backward carries
    G_t = ∂L/∂h_t + a_{t+1} G_{t+1} back the same way, then ∂a_t = G_t h_{t-1}, ∂b_t = G_t, ∂h0 = a_0 G_0."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:
        h = torch.empty_like(b)
        if h0 is None:
            h[0] = b[0]
        else:
            torch.addcmul(b[0], a[0], h0, out=h[0])
        for t in range(1, len(b)):
            torch.addcmul(b[t], a[t], h[t - 1], out=h[t])
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, h, h0 = ctx.saved_tensors
        carried = grad.clone()  # (T, ..., H): G_t, from the last step back
        for t in range(len(carried) - 1, 0, -1):
            carried[t - 1].addcmul_(a[t], carried[t])
        before = torch.cat((torch.zeros_like(h[:1]) if h0 is None else h0[None], h[:-1]))  # h_{t-1}
        return carried * before, carried, None if h0 is None else a[0] * carried[0]


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for every t of the leading (time) axis, from h0 (None: h_0 = b_0); a, b
    (T, ..., H). Returns h (T, ..., H), differentiable in a, b and h0."""
    return _LinearScan.apply(a.contiguous(), b.contiguous(), h0)


def scan(family: str, gi: Tensor, h0: Tensor | None = None) -> Tensor:
    """Every h of a window of ``family`` from its input projections gi (T, ..., G*H), from h0 (..., H) or no
    state: :func:`linear_scan` on the CPU, :func:`log_scan` elsewhere (parallel over time)."""
    # refused on every device alike: log_scan (the GPU's) takes the state's log; every h the cell makes is > 0
    if h0 is not None and bool((h0 < 0).any()):
        raise ValueError(f"model: a {family} state must be >= 0 for its parallel form (its log-space scan takes "
                         f"the state's log; every state the cell makes is positive), got a minimum of "
                         f"{h0.min().item():.3g}")
    if gi.device.type == "cpu":
        return linear_scan(*coefficients(family, gi), h0)
    return log_scan(*log_coefficients(family, gi), h0)


def scan_unroll(cell: nn.Module, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
    """The recurrent core's unroll for a minimal family's parallel form: x (T, B, I), state (B, H) or None;
    returns every h (T, B, H) and the last. ``cell``: its parameters (a ``ScratchCell`` of that family)."""
    gi = F.linear(x, cell.weight_ih, cell.bias_ih)  # (T, B, G*H), all steps at once
    hs = scan(cell.family, gi, state)
    return hs, hs[-1]
