"""The minimal families' parallel form: a window of mingru or minlstm steps as one log-space scan.

Their gates read the input alone, so each step is h_t = a_t h_{t-1} + b_t with every a_t and b_t known at
once from the window's input projections (mingru: a = 1 - z, b = z h~; minlstm: a = f', b = i' h~), and
every h_t stays positive (g > 0). In log space (Heinsen, arXiv 2311.06281; Feng et al., appendix B):

    log h_t = A_t + log Σ_{s <= t} exp(log b_s - A_s),   A_t = Σ_{s <= t} log a_s,

one ``cumsum`` and one ``logcumsumexp`` over time, with a carried state h_{-1} entering as one more log
value, log h_{-1}, before the first step (its coefficient's log is 0). Equal to the sequential cell
(``cells.mingru_step`` / ``minlstm_step``) to float round-off, and a window-by-window run with the state
carried equals one long call (``tests/test_scan.py`` states both).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .cells import log_g


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


def scan_unroll(cell: nn.Module, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
    """The recurrent core's unroll for a minimal family's parallel form: x (T, B, I), state (B, H) or None;
    returns every h (T, B, H) and the last. ``cell``: its parameters (a ``ScratchCell`` of that family)."""
    if state is not None and bool((state < 0).any()):  # its log would be NaN: every h the cell makes is > 0
        raise ValueError(f"model: a {cell.family} state must be >= 0 for its parallel form (it takes the state's "
                         f"log; every state the cell makes is positive), got a minimum of {state.min().item():.3g}")
    gi = F.linear(x, cell.weight_ih, cell.bias_ih)  # (T, B, G*H), all steps at once
    hs = log_scan(*log_coefficients(cell.family, gi), state)
    return hs, hs[-1]
