"""Engines: the ways nextchar runs one recurrent layer over a whole sequence.

An engine is one function ``unroll(cell, x, state) -> (outputs, state)``: ``x`` (T, B, I), ``state``
(B, H) or an LSTM's (h, c) pair, ``outputs`` (T, B, H) and the state after the last step. The
recurrent core (``model.RecurrentCore``) does everything around it once (stacking, dropout between
layers, the zero state, unbatched input) and looks the engine up here by name.

- ``autograd``: a Python loop over time calling the cell; autograd records every step.
- ``fused``: the same cell's parameters through compiled (numba) whole-sequence forward and
  backward-through-time kernels, behind a ``torch.autograd.Function``; torch's optimizers work as usual.
- ``compiled`` is not a model's engine but a trainer, asked for by name: ``fit(..., trainer="compiled")``
  trains a fused model by the exam's protocol in whole compiled epochs (``fused/compiled.py``) and refuses,
  naming what it supports, anything else.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torch import Tensor

from .cells import State, hidden_of

Unroll = Callable[[nn.Module, Tensor, State], tuple[Tensor, State]]


def loop_unroll(cell: nn.Module, x: Tensor, state: State) -> tuple[Tensor, State]:
    """The autograd engine: ``state = cell(x_t, state)`` for t = 0..T-1, hidden outputs stacked."""
    hiddens = []
    for x_t in x:  # x_t: (B, I)
        state = cell(x_t, state)
        hiddens.append(hidden_of(state))
    return torch.stack(hiddens), state


def fused_unroll(cell: nn.Module, x: Tensor, state: State) -> tuple[Tensor, State]:
    """The fused engine; numba is imported only when it is first used."""
    from .fused.core import unroll

    return unroll(cell, x, state)


UNROLLS: dict[str, Unroll] = {"autograd": loop_unroll, "fused": fused_unroll}
ENGINES = tuple(UNROLLS)
"""A model's engines (``ModelConfig.engine``)."""
COMPILED = "compiled"
"""The compiled trainer, asked for by name where a whole training run is chosen (``fit(..., trainer=COMPILED)``,
``nextchar exam --engine compiled``, the bench): whole epochs in one compiled call, on a fused model."""
EXAM_ENGINES = (*ENGINES, COMPILED)
"""What ``nextchar exam --engine`` and the bench take: a model's engine, or the compiled trainer."""
CPU_ONLY = ("fused", COMPILED)
"""The engines (and the trainer) whose (numba) kernels run on the CPU only."""


def model_engine(engine: str) -> str:
    """The model's engine for an exam engine name: the compiled trainer trains a fused model."""
    return "fused" if engine == COMPILED else engine


def engine_device(engine: str, device: str) -> str:
    """The device a run asked for, where ``auto`` means cpu for the engines that run only there."""
    return "cpu" if engine in CPU_ONLY and device == "auto" else device


def get_unroll(engine: str) -> Unroll:
    if engine not in UNROLLS:
        raise ValueError(f"model: engine must be one of {ENGINES}, got {engine!r}")
    return UNROLLS[engine]
