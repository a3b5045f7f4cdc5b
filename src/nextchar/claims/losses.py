"""Claim 5: must a recurrent network be trained with cross-entropy?"""
from __future__ import annotations

import torch

from ..config import ModelConfig
from ..model import CharModel
from ..plots import loss_curves
from ..training import fit
from ..vocab import exam_data
from .result import ClaimResult


def claim_cross_entropy_only(epochs: int = 150, seed: int = 0, lr: float = 0.1, device: str = "cpu") -> ClaimResult:
    """Train the exam's nn.RNN(7, 8) on hi?hello!! with cross-entropy and with MSE(softmax, one-hot)."""
    _, x, y = exam_data()
    runs = {}
    for loss in ("cross_entropy", "mse"):
        torch.manual_seed(seed)  # same initial weights for both losses
        runs[loss] = fit(CharModel(ModelConfig(7, "rnn", "module", 8)), x, y, epochs=epochs, lr=lr, loss=loss,
                        device=device)
    acc = {loss: r.history[-1]["accuracy"] for loss, r in runs.items()}
    learns = acc["mse"] >= acc["cross_entropy"] - 0.01 and acc["mse"] > 0.9
    figure = loss_curves({loss: ([h["epoch"] for h in r.history], [h["loss"] for h in r.history])
                          for loss, r in runs.items()}, title="nn.RNN(7, 8) on hi?hello!!", xlabel="epoch", logy=True)
    return ClaimResult(
        5, "An RNN or LSTM must always be trained with CrossEntropyLoss.", not learns,
        {"accuracy": acc, "final_loss": {k: r.final_loss for k, r in runs.items()},
         "loss_curve": {k: [h["loss"] for h in r.history] for k, r in runs.items()},
         "epochs": epochs, "lr": lr, "seed": seed},
        f"With the same initial weights, MSE between softmax outputs and one-hot targets reaches "
        f"{acc['mse']:.1%} accuracy, cross-entropy {acc['cross_entropy']:.1%}: another loss learns the task too "
        f"(cross-entropy is the usual choice because its gradient does not vanish when the softmax saturates).",
        {"loss_curves": figure})
