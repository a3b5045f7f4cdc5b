"""Many models as one computation: train K models of one family and size at once.

Two engines run :func:`fitting.fit`'s protocol (full-sequence epochs, Adam) for K models, each with its
own initial weights and learning rate:

- :func:`fit_many` (``many``): one call of the compiled trainer's host (``fused/compiled.train_models``: the
  model as the innermost axis, SIMD lanes over models, blocks of them over the cores; a few models one lane
  each); each model's result equals ``fit`` of that model alone with ``trainer="compiled"``, bit for bit.
  Cross-entropy. With ``device="cuda"`` the same design on the GPU (``fused/cuda_trainer.py``: one model
  per thread, every epoch in one kernel), equal to the CPU trainer to round-off.
- :func:`fit_stacked` (``stacked``): the K models as one torch module with stacked weights
  (``stacked.py``), on any device (``cuda`` too) and with either loss; equal to training each model
  alone to float round-off.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..budget import check_memory
from ..cells import GATES
from ..device import resolve_device
from ..model import CharModel
from ..step import check_finite, param_count
from . import protocol as exam
from .fitting import FitResult, fit_memory


def models_memory(models: Sequence[CharModel], x: Tensor, epochs: int) -> int:
    """What training these models together by fit's protocol holds (:func:`fitting.fit_memory`)."""
    config = models[0].config
    return fit_memory(models=len(models), steps=x.shape[0], vocab_size=config.vocab_size,
                      hidden_size=config.hidden_size, gates=GATES[config.family], params=param_count(models[0]),
                      epochs=epochs)


def _trained_tensors(model: CharModel) -> list[Tensor]:
    """What the many engine trains, in its kernels' order: w_ih, w_hh, b_ih, b_hh, w_out, b_out."""
    layer = model.layer_weights()[0]
    return [layer["weight_ih"], layer["weight_hh"], layer["bias_ih"], layer["bias_hh"], model.head.weight,
            model.head.bias]


def _stacked(models: Sequence[CharModel]) -> list[np.ndarray]:
    """Each of :func:`_trained_tensors` stacked on a leading model axis (K, ...), C-contiguous."""
    per_model = [_trained_tensors(model) for model in models]
    return [np.ascontiguousarray(np.stack([p[i].detach().cpu().numpy() for p in per_model])) for i in range(6)]


def _check_alike(models: Sequence[CharModel], x: Tensor) -> None:
    from ..fused.compiled import check_supported

    if not models:
        raise ValueError("many: needs at least one model")
    first = models[0].config
    for model in models:
        c = model.config
        if (c.family, c.hidden_size, c.nonlinearity, c.vocab_size) != (first.family, first.hidden_size,
                                                                       first.nonlinearity, first.vocab_size):
            raise ValueError(f"many: models must share family, hidden size, nonlinearity and vocabulary; got "
                             f"{first.family}/{first.hidden_size} and {c.family}/{c.hidden_size}")
        check_supported(model, x, exam.OPTIMIZER, "cross_entropy", resolve_device("cpu"))


def _gpu_asked(device: str | torch.device) -> bool:
    """True for a cuda device, once numba.cuda sees a GPU (a clear error before any work if it does not)."""
    if resolve_device(device).type != "cuda":
        return False
    from numba import cuda

    if not cuda.is_available():
        raise ValueError(f"many: device {str(device)!r} needs numba.cuda, which finds no usable GPU here "
                         "(a CUDA driver, and numba-cuda for CUDA 12 or newer); use device cpu")
    return True


DIVERGED = ("raise", "record")
"""What a model whose loss becomes NaN or infinite does: stop everything with an error naming it (raise), or
end alone, recorded in its FitResult (record), while the other models train on."""


def _check_run(models: Sequence[CharModel], x: Tensor, epochs: int, labels: Sequence[str] | None,
               diverged: str) -> list[str]:
    """What both engines check before any work (epochs, models, the divergence policy, the memory);
    returns the name of each model in errors."""
    if epochs < 1:
        raise ValueError(f"many: epochs must be >= 1, got {epochs}")
    if not models:
        raise ValueError("many: needs at least one model")
    if diverged not in DIVERGED:
        raise ValueError(f"many: diverged must be one of {DIVERGED}, got {diverged!r}")
    check_memory(models_memory(models, x, epochs), f"many: {len(models)} models x {epochs:,} epochs",
                 "train fewer models at once or fewer epochs")
    return list(labels) if labels is not None else [f"model {k}" for k in range(len(models))]


@torch.no_grad()
def fit_many(models: Sequence[CharModel], x: Tensor, y: Tensor, *, epochs: int,
             lrs: float | Sequence[float] = exam.LR, labels: Sequence[str] | None = None,
             diverged: str = "raise", device: str | torch.device = "cpu") -> list[FitResult]:
    """Train each model in place on (x, y) for ``epochs``, model k with learning rate ``lrs[k]``.

    Any formulation works as a source of weights (its layer and head weights are what is trained); one
    layer, one-hot input, no dropout, as the compiled engine. Returns one :class:`FitResult` per model.
    ``labels[k]`` names model k in errors (``seed 3``); ``diverged``: one of :data:`DIVERGED`. A diverged
    model keeps its initial weights. ``device`` cuda: the GPU trainer (numba.cuda; each model stops alone).
    """
    from ..fused.compiled import train_models

    lrs = [float(lrs)] * len(models) if isinstance(lrs, (int, float)) else [float(lr) for lr in lrs]
    if len(lrs) != len(models):
        raise ValueError(f"many: got {len(lrs)} learning rates for {len(models)} models")
    bad = [lr for lr in lrs if not lr > 0]
    if bad:
        raise ValueError(f"many: learning rates must be > 0, got {bad[:5]}")
    labels = _check_run(models, x, epochs, labels, diverged)
    on_gpu = _gpu_asked(device)
    x, y = x.cpu(), y.cpu()
    _check_alike(models, x)
    arrays = _stacked(models)
    xs, targets = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy().astype(arrays[0].dtype))
    K, T = len(models), xs.shape[0]
    config = models[0].config
    run = train_models(arrays, config.family, config.nonlinearity == "relu", xs, targets, lrs, epochs, on_gpu=on_gpu,
                       model_bytes=models_memory(models[:1], x, epochs))
    losses, correct, probs, done = run
    stopped = [k for k in range(K) if done[k] < epochs]
    failed = {k for k in stopped if not np.isfinite(losses[k, done[k]])}
    if diverged == "raise":
        for k in stopped:
            check_finite(losses[k, done[k]], f"epoch {done[k] + 1} of {labels[k]} (lr {lrs[k]})")
    results: dict[int, FitResult] = {}
    for k in range(K):
        history = [{"epoch": e + 1, "loss": float(losses[k, e]), "accuracy": int(correct[k, e]) / T}
                   for e in range(done[k])]
        if k in failed:
            results[k] = FitResult(history=history, diverged_at_epoch=int(done[k]) + 1)
        elif k not in stopped:
            for param, trained in zip(_trained_tensors(models[k]), arrays):
                param.copy_(torch.from_numpy(trained[k]))
            results[k] = FitResult(history=history, probs=torch.from_numpy(probs[k].copy()))
    # a block of lanes stops with its first diverging model: train its healthy models again, still untouched
    again = [k for k in stopped if k not in failed]
    if again:
        retrained = fit_many([models[k] for k in again], x, y, epochs=epochs, lrs=[lrs[k] for k in again],
                             labels=[labels[k] for k in again], diverged=diverged, device=device)
        results.update(zip(again, retrained))
    return [results[k] for k in range(K)]


def fit_stacked(models: Sequence[CharModel], x: Tensor, y: Tensor, *, epochs: int,
                lrs: float | Sequence[float] = exam.LR, loss: str = "cross_entropy",
                device: str | torch.device = "cpu", labels: Sequence[str] | None = None,
                diverged: str = "raise") -> list[FitResult]:
    """:func:`fit_many` in torch: the models' weights stacked (``StackedRecurrent``), trained together on
    ``device`` by the canonical step with a learning rate per model (``StackedAdam``). The models given
    are left as they were; returns one :class:`FitResult` per model (history and last probs, on the CPU).
    ``labels`` and ``diverged`` as :func:`fit_many`'s: a recorded model's loss leaves the sum the step
    minimises (each model's gradient is its own, so the others train on exactly as before)."""
    from ..step import train_step
    from .stacked import StackedAdam, StackedRecurrent, per_model_loss

    labels = _check_run(models, x, epochs, labels, diverged)
    device = resolve_device(device)
    stacked = StackedRecurrent.from_models(models).to(device)
    opt = StackedAdam(stacked.parameters(), lrs)
    x, y = x[:, None].to(device), y.to(device)  # (T, 1, I): one sequence shared by the K models
    classes = y.argmax(-1)[:, None]  # (T, 1)
    alive = torch.ones(len(models), dtype=torch.bool, device=device)
    diverged_at: list[int | None] = [None] * len(models)

    def criterion(out: Tensor, target: Tensor) -> Tensor:
        per_model = per_model_loss(loss, out, target)  # (K,)
        return torch.where(alive & per_model.isfinite(), per_model, torch.zeros_like(per_model)).sum()

    histories: list[list[dict]] = [[] for _ in models]
    for epoch in range(1, epochs + 1):
        logits, _, _ = train_step(stacked, x, y, criterion, opt, where=f"epoch {epoch}")
        with torch.no_grad():
            losses = per_model_loss(loss, logits, y)
            accuracy = (logits[:, :, 0].argmax(-1) == classes).float().mean(0).tolist()
        for k in (alive & ~losses.isfinite()).nonzero().flatten().tolist():
            if diverged == "raise":
                check_finite(losses[k], f"epoch {epoch} of {labels[k]}")
            alive[k], diverged_at[k] = False, epoch
        for history, value, acc, k in zip(histories, losses.tolist(), accuracy, range(len(models))):
            if diverged_at[k] is None:
                history.append({"epoch": epoch, "loss": value, "accuracy": acc})
    probs = logits.detach()[:, :, 0].softmax(-1).cpu()  # (T, K, V)
    return [FitResult(history=h, probs=None if diverged_at[k] is not None else probs[:, k].contiguous(),
                      diverged_at_epoch=diverged_at[k]) for k, h in enumerate(histories)]
