"""The fused engine: the hand-written cells' parameters, run by compiled whole-sequence kernels.

``FusedCore`` holds the same cells (and so the same parameter names) as the step-by-step
``LoopCore``, so a checkpoint, ``copy_weights`` and the optimizer see no difference. Per layer it
computes the input projection for all steps at once in torch, then hands the sequential part to a
``torch.autograd.Function`` whose forward and backward are the numba kernels: torch optimizers,
clipping and the rest of autograd work unchanged.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import State, map_state, stack_states
from ..model import LoopCore
from . import kernels

SUPPORTED_DTYPES = (torch.float32, torch.float64)


def _np(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


def _one(t: Tensor):
    return np.dtype(str(t.dtype).removeprefix("torch.")).type(1)


def _fast_exp(t: Tensor) -> bool:
    """The vectorizable expf is float32-accurate; float64 keeps libm's exp."""
    return t.dtype == torch.float32


def _hidden_weight_grads(dgh: Tensor, hs: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """dW_hh = Σ_t dgh_t^T h_{t-1}, db_hh = Σ_t Σ_b dgh_t: one matmul over all steps (G, H), (G,)."""
    h_prev = torch.cat([h0[None], hs[:-1]])  # (T, B, H)
    return dgh.flatten(0, 1).t() @ h_prev.flatten(0, 1), dgh.sum((0, 1))


class RNNSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, relu: bool):
        hs = torch.empty(gi.shape[:2] + h0.shape[-1:], dtype=gi.dtype)
        kernels.rnn_forward(_np(gi), _np(w_hh.t()), _np(b_hh), _np(h0), relu, _one(gi), _fast_exp(gi), hs.numpy())
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
        kernels.lstm_forward(_np(gi), _np(w_hh.t()), _np(b_hh), _np(h0), _np(c0), _one(gi), _fast_exp(gi),
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
        kernels.gru_forward(_np(gi), _np(w_hh.t()), _np(b_hh), _np(h0), _one(gi), _fast_exp(gi), hs.numpy(),
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


def run_layer(family: str, gi: Tensor, cell, state: State, relu: bool) -> tuple[Tensor, State]:
    """One layer over a whole sequence: gi (T, B, G*H), state (B, H) or a pair -> hs (T, B, H), last state."""
    if family == "lstm":
        hs, h, c = LSTMSequence.apply(gi, cell.weight_hh, cell.bias_hh, *state)
        return hs, (h, c)
    if family == "gru":
        hs, h = GRUSequence.apply(gi, cell.weight_hh, cell.bias_hh, state)
        return hs, h
    hs, h = RNNSequence.apply(gi, cell.weight_hh, cell.bias_hh, state, relu)
    return hs, h


class FusedCore(LoopCore):
    """Same cells and parameters as the hand-written LoopCore; compiled forward and backward-through-time."""

    def forward(self, input: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        self._check(input)
        unbatched = input.dim() == 2
        if unbatched:  # (T, I) -> (T, 1, I); state (L, H) -> (L, 1, H)
            input = input.unsqueeze(1)
            state = None if state is None else map_state(lambda s: s.unsqueeze(1), state)
        output, last_states = input, []
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0:
                output = F.dropout(output, self.dropout, self.training)
            gi = F.linear(output, cell.weight_ih, cell.bias_ih)  # (T, B, G*H), every step at once
            zeros = gi.new_zeros(gi.shape[1], cell.hidden_size)
            layer_state = ((zeros, zeros) if self.family == "lstm" else zeros) if state is None \
                else map_state(lambda s: s[k], state)
            output, layer_state = run_layer(self.family, gi.contiguous(), cell, layer_state,
                                            cell.nonlinearity == "relu")
            last_states.append(layer_state)
        state = stack_states(last_states)
        if unbatched:
            output, state = output.squeeze(1), map_state(lambda s: s.squeeze(1), state)
        return output, state

    def _check(self, input: Tensor) -> None:
        if input.device.type != "cpu":
            raise ValueError(f"fused engine: runs on the CPU only (numba kernels), got input on {input.device}; "
                             "use --engine autograd or --device cpu")
        if input.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"fused engine: supports {SUPPORTED_DTYPES}, got {input.dtype}")
