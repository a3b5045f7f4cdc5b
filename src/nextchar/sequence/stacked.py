"""K models of one family and size as one torch module, on any device: the many engine in torch.

Every weight gets a leading model axis (``weight_ih`` (K, G*H, I), ..., ``head_weight`` (K, V, H)), so one
forward pass computes all K models with batched matmuls (``einsum``) and the cell math of ``cells.py``.
Models never mix: model k's loss depends only on model k's weights, so summing the K losses gives each
model its own gradient. :class:`StackedAdam` is torch's Adam rule with a learning rate per model and
:func:`clip_per_model` clips each model's gradient norm apart. Equal to training each model alone to
float round-off (the matmuls run in another order), not bit for bit. A minimal family (mingru, minlstm) has
no ``weight_hh`` / ``bias_hh`` (None): its K models' steps all run at once, by its scan (``scan.py``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..cells import GATES, MIN_FAMILIES, WEIGHT_NAMES, State, cell_step, hidden_of, zero_state
from ..scan import scan


class StackedRecurrent(nn.Module):
    """K one-layer models: input (one-hot or features) -> recurrent cell -> Linear head, all stacked."""

    def __init__(self, family: str, models: int, input_size: int, hidden_size: int, vocab_size: int,
                 nonlinearity: str = "tanh") -> None:
        super().__init__()
        rows, recurrent = GATES[family] * hidden_size, family not in MIN_FAMILIES
        self.family, self.nonlinearity, self.vocab_size = family, nonlinearity, vocab_size
        self.weight_ih = nn.Parameter(torch.empty(models, rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(models, rows, hidden_size)) if recurrent else None
        self.bias_ih = nn.Parameter(torch.empty(models, rows))
        self.bias_hh = nn.Parameter(torch.empty(models, rows)) if recurrent else None
        self.head_weight = nn.Parameter(torch.empty(models, vocab_size, hidden_size))
        self.head_bias = nn.Parameter(torch.empty(models, vocab_size))

    @classmethod
    @torch.no_grad()
    def from_models(cls, models: Sequence[nn.Module]) -> StackedRecurrent:
        """Stack the one-layer, one-hot ``CharModel``s given (any formulation): their weights, copied."""
        c = models[0].config
        stacked = cls(c.family, len(models), c.input_size, c.hidden_size, c.vocab_size, c.nonlinearity)
        for k, model in enumerate(models):
            layer = model.layer_weights()[0]
            for name in stacked.layer_names:
                getattr(stacked, name)[k] = layer[name]
            stacked.head_weight[k], stacked.head_bias[k] = model.head.weight, model.head.bias
        return stacked

    @torch.no_grad()
    def copy_to(self, index: int, model: nn.Module) -> nn.Module:
        """Give the one-layer ``CharModel`` ``model`` the weights of stacked model ``index``."""
        layer = model.layer_weights()[0]
        for name in self.layer_names:
            layer[name].copy_(getattr(self, name)[index])
        model.head.weight.copy_(self.head_weight[index])
        model.head.bias.copy_(self.head_bias[index])
        return model

    @property
    def models(self) -> int:
        return self.weight_ih.shape[0]

    @property
    def layer_names(self) -> list[str]:
        """The recurrent layer's parameters this family has (a minimal family: no weight_hh, bias_hh)."""
        return [name for name in WEIGHT_NAMES if getattr(self, name) is not None]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``x``: indices (T, K, B) or features (T, K, B, I); (T, B) / (T, B, I) feed every model the same.
        Returns logits (T, K, B, V) and the last state (K, B, H) (a pair for the LSTM)."""
        if not x.is_floating_point():
            x = F.one_hot(x, self.vocab_size).to(self.weight_ih.dtype)
        if x.dim() == 3:  # shared input: (T, B, I) -> (T, K, B, I), a view
            x = x.unsqueeze(1).expand(-1, self.models, -1, -1)
        gi = torch.einsum("tkbi,kgi->tkbg", x, self.weight_ih) + self.bias_ih[:, None]  # every step at once
        if self.weight_hh is None:  # a minimal family: the gates read the input alone, so every step at once
            hs = scan(self.family, gi, state)  # (T, K, B, H)
            return torch.einsum("tkbh,kvh->tkbv", hs, self.head_weight) + self.head_bias[:, None], hs[-1]
        if state is None:
            state = zero_state(self.family, (*x.shape[1:3], self.weight_hh.shape[-1]), gi)
        hiddens, w_hh_t, b_hh = [], self.weight_hh.transpose(1, 2), self.bias_hh[:, None]  # (K, H, G*H), (K, 1, G*H)
        for gi_t in gi:  # (K, B, G*H)
            gh = torch.baddbmm(b_hh, hidden_of(state), w_hh_t)  # one batched matmul per step: W_hh h + b_hh
            state = cell_step(self.family, gi_t, gh, state, self.nonlinearity)
            hiddens.append(hidden_of(state))
        hs = torch.stack(hiddens)  # (T, K, B, H)
        return torch.einsum("tkbh,kvh->tkbv", hs, self.head_weight) + self.head_bias[:, None], state


def clip_per_model(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """``clip_grad_norm_`` for each model apart: params' leading axis is the model. Returns the norms (K,)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (K,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
    return norms


class StackedAdam(torch.optim.Optimizer):
    """torch.optim.Adam's rule (no weight decay) with one learning rate per model (the leading axis)."""

    def __init__(self, params, lrs: Tensor | Sequence[float] | float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, {"betas": betas, "eps": eps})
        self.lrs = torch.as_tensor(lrs, dtype=torch.float64)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                m, v, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                lrs = self.lrs.expand(p.shape[0]) if self.lrs.dim() == 0 else self.lrs
                step_size = (lrs / (1 - beta1 ** step)).to(p).view(-1, *[1] * (p.dim() - 1))
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
                p.sub_(step_size * m / denom)


def per_model_loss(name: str, logits: Tensor, target: Tensor) -> Tensor:
    """Each model's loss (K,) over one shared sequence: logits (T, K, 1, V), one-hot target (T, V).
    ``cross_entropy``, or ``mse`` between the softmax and the one-hot target (mean over T x V, as
    ``training.loss_fn('mse')`` takes it)."""
    target = target[:, None, None].expand_as(logits)
    if name == "cross_entropy":
        return -(target * logits.log_softmax(-1)).sum(-1).mean((0, 2))
    if name == "mse":
        return (logits.softmax(-1) - target).square().mean((0, 2, 3))
    raise ValueError(f"stacked: loss must be cross_entropy or mse, got {name!r}")
