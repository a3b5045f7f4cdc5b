"""First calls of every fused kernel, for the benchmark's compile-time measurement."""
from __future__ import annotations

import torch

from .config import ModelConfig
from .model import CharModel
from .training import fit
from .vocab import exam_data


def first_calls() -> None:
    """Run each family through the fused autograd path and the compiled epoch once (float32)."""
    _, x, y = exam_data()
    for family in ("rnn", "lstm", "gru"):
        model = CharModel(ModelConfig(7, family, "scratch", 4, engine="fused"))
        logits, _ = model(torch.zeros(3, 2, dtype=torch.long))
        logits.sum().backward()
        fit(model, x[:5], y[:5], epochs=1)
