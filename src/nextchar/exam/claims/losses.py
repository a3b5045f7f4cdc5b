"""Claim 5: must a recurrent network be trained with cross-entropy? Measured over many seeds."""
from __future__ import annotations

import torch

from ...config import ModelConfig
from ...model import CharModel
from ...plots import loss_curves
from ...sequence import protocol as exam
from ...sequence.data import exam_data
from ...sequence.fitting import FitResult
from ...sequence.many import fit_stacked
from .memory import interval95
from .result import ClaimResult

LOSS_NAMES = ("cross_entropy", "mse")


def train_seeds(loss: str, seeds: list[int], epochs: int, lr: float, device: str) -> list[FitResult]:
    """The exam's nn.RNN(7, 8) under each seed, all trained together on hi?hello!! by the exam's protocol
    (full sequence, Adam) with ``loss``: the stacked many-models engine."""
    _, x, y = exam_data()
    models = []
    for seed in seeds:
        torch.manual_seed(seed)  # the same initial weights for both losses
        models.append(CharModel(ModelConfig(exam.VOCAB_SIZE, "rnn", "module", exam.HIDDEN_SIZE["rnn"])))
    return fit_stacked(models, x, y, epochs=epochs, lrs=lr, loss=loss, device=device)


def claim_cross_entropy_only(epochs: int = 150, seeds: int = 32, lr: float = exam.LR,
                             device: str = "cpu") -> ClaimResult:
    """The exam's nn.RNN(7, 8) on hi?hello!!, ``seeds`` initial weights, each trained with cross-entropy and
    with MSE(softmax, one-hot)."""
    seed_list = list(range(seeds))
    fits = {loss: train_seeds(loss, seed_list, epochs, lr, device) for loss in LOSS_NAMES}
    # per loss: each seed's last-epoch accuracy and loss, and the mean loss per epoch
    runs = {loss: ([f.history[-1]["accuracy"] for f in fs], [f.final_loss for f in fs],
                   [sum(f.history[e]["loss"] for f in fs) / seeds for e in range(epochs)]) for loss, fs in fits.items()}
    acc = {loss: sum(r[0]) / seeds for loss, r in runs.items()}
    ci = {loss: list(interval95(r[0])[1:]) for loss, r in runs.items()}
    solved = {loss: sum(a == 1.0 for a in r[0]) / seeds for loss, r in runs.items()}
    learns = acc["mse"] >= acc["cross_entropy"] - 0.01 and acc["mse"] > 0.9
    figure = loss_curves({f"{loss} (mean of {seeds} seeds)": (range(1, epochs + 1), r[2]) for loss, r in runs.items()},
                         title=f"nn.RNN({exam.VOCAB_SIZE}, {exam.HIDDEN_SIZE['rnn']}) on hi?hello!!", xlabel="epoch",
                         logy=True)
    return ClaimResult(
        5, "An RNN or LSTM must always be trained with CrossEntropyLoss.", not learns,
        {"accuracy": acc, "accuracy_ci95": ci, "solved_fraction": solved, "seeds": seeds,
         "accuracy_runs": {loss: r[0] for loss, r in runs.items()},
         "final_loss": {loss: sum(r[1]) / seeds for loss, r in runs.items()},
         "loss_curve": {loss: r[2] for loss, r in runs.items()}, "epochs": epochs, "lr": lr},
        f"Over {seeds} seeds (each seed's initial weights trained with both losses), MSE between softmax outputs "
        f"and one-hot targets reaches a mean accuracy of {acc['mse']:.1%} (95% interval {ci['mse'][0]:.1%}-"
        f"{ci['mse'][1]:.1%}; 100% for {solved['mse']:.0%} of seeds), cross-entropy {acc['cross_entropy']:.1%} "
        f"({solved['cross_entropy']:.0%} of seeds at 100%): another loss learns the task too (cross-entropy is "
        "the usual choice because its gradient does not vanish when the softmax saturates).",
        {"loss_curves": figure})
