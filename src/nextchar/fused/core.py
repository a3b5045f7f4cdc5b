"""The fused engine: a hand-written cell's own parameters, run by compiled whole-sequence kernels.

:func:`unroll` is the engine (see ``engines.py``): it computes the input projection for all steps at
once in torch, then hands the sequential part to a ``torch.autograd.Function`` whose forward and
backward are the numba kernels, so torch optimizers, clipping and the rest of autograd work unchanged
and checkpoints are interchangeable with the autograd engine's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import State
from . import kernels

SUPPORTED_DTYPES = (torch.float32, torch.float64)


def _np(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


def _one(t: Tensor):
    return np.dtype(str(t.dtype).removeprefix("torch.")).type(1)


def _hidden_weight_grads(dgh: Tensor, hs: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """dW_hh = Σ_t dgh_t^T h_{t-1}, db_hh = Σ_t Σ_b dgh_t: one matmul over all steps (G, H), (G,)."""
    h_prev = torch.cat([h0[None], hs[:-1]])  # (T, B, H)
    return dgh.flatten(0, 1).t() @ h_prev.flatten(0, 1), dgh.sum((0, 1))


class RNNSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, relu: bool):
        hs = torch.empty(gi.shape[:2] + h0.shape[-1:], dtype=gi.dtype)
        kernels.rnn_forward(_np(gi), _np(w_hh.t()), _np(b_hh), _np(h0), relu, _one(gi), hs.numpy())
        ctx.save_for_backward(hs, h0, w_hh)
        ctx.relu = relu
        return hs, hs[-1].clone()

    @staticmethod
    def backward(ctx, dhs: Tensor, dh_last: Tensor):
        hs, h0, w_hh = ctx.saved_tensors
        dgh = torch.empty(hs.shape, dtype=hs.dtype)
        dh0 = kernels.rnn_backward(_np(dhs), _np(dh_last), hs.numpy(), _np(w_hh), ctx.relu, _one(hs), dgh.numpy())
        dw, db = _hidden_weight_grads(dgh, hs, h0)
        return dgh, dw, db, torch.from_numpy(dh0), None


class LSTMSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: Tensor):
        hs = torch.empty(gi.shape[:2] + h0.shape[-1:], dtype=gi.dtype)
        cs, tanh_cs, gates = torch.empty_like(hs), torch.empty_like(hs), torch.empty_like(gi)
        kernels.lstm_forward(_np(gi), _np(w_hh.t()), _np(b_hh), _np(h0), _np(c0), _one(gi),
                             hs.numpy(), cs.numpy(), tanh_cs.numpy(), gates.numpy())
        ctx.save_for_backward(hs, cs, tanh_cs, gates, h0, c0, w_hh)
        return hs, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, dhs: Tensor, dh_last: Tensor, dc_last: Tensor):
        hs, cs, tanh_cs, gates, h0, c0, w_hh = ctx.saved_tensors
        dgh = torch.empty_like(gates)
        dh0, dc0 = kernels.lstm_backward(_np(dhs), _np(dh_last), _np(dc_last), cs.numpy(), tanh_cs.numpy(), _np(c0),
                                         gates.numpy(), _np(w_hh), _one(hs), dgh.numpy())
        dw, db = _hidden_weight_grads(dgh, hs, h0)
        return dgh, dw, db, torch.from_numpy(dh0), torch.from_numpy(dc0)


class GRUSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor):
        hs = torch.empty(gi.shape[:2] + h0.shape[-1:], dtype=gi.dtype)
        gates = torch.empty(gi.shape[:2] + (4 * h0.shape[-1],), dtype=gi.dtype)
        kernels.gru_forward(_np(gi), _np(w_hh.t()), _np(b_hh), _np(h0), _one(gi), hs.numpy(),
                            gates.numpy())
        ctx.save_for_backward(hs, gates, h0, w_hh)
        return hs, hs[-1].clone()

    @staticmethod
    def backward(ctx, dhs: Tensor, dh_last: Tensor):
        hs, gates, h0, w_hh = ctx.saved_tensors
        dgi, dgh = torch.empty_like(hs).repeat(1, 1, 3), torch.empty(hs.shape[:2] + (3 * hs.shape[-1],), dtype=hs.dtype)
        dh0 = kernels.gru_backward(_np(dhs), _np(dh_last), hs.numpy(), _np(h0), gates.numpy(), _np(w_hh), _one(hs),
                                   dgi.numpy(), dgh.numpy())
        dw, db = _hidden_weight_grads(dgh, hs, h0)
        return dgi, dw, db, torch.from_numpy(dh0)


def check_input(x: Tensor) -> None:
    """The kernels run on CPU arrays of float32 or float64; anything else is a clear error."""
    if x.device.type != "cpu":
        raise ValueError(f"fused engine: runs on the CPU only (numba kernels), got input on {x.device}; "
                         "use --engine autograd or --device cpu")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"fused engine: supports {SUPPORTED_DTYPES}, got {x.dtype}")


def unroll(cell, x: Tensor, state: State) -> tuple[Tensor, State]:
    """One layer over a whole sequence: x (T, B, I), state (B, H) or a pair -> hs (T, B, H), last state."""
    check_input(x)
    gi = F.linear(x, cell.weight_ih, cell.bias_ih).contiguous()  # (T, B, G*H), every step at once
    if cell.family == "lstm":
        hs, h, c = LSTMSequence.apply(gi, cell.weight_hh, cell.bias_hh, *state)
        return hs, (h, c)
    if cell.family == "gru":
        return GRUSequence.apply(gi, cell.weight_hh, cell.bias_hh, state)
    return RNNSequence.apply(gi, cell.weight_hh, cell.bias_hh, state, cell.nonlinearity == "relu")
