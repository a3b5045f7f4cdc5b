"""Many models as one computation: train K models of one family and size at once.

Two engines run :func:`fitting.fit`'s protocol (full-sequence epochs, Adam) for K models, each with its
own initial weights and learning rate:

- :func:`fit_many` (``many``): one compiled call spread over the CPU cores; each model's result equals
  ``fit`` of that model alone with ``engine="compiled"``, bit for bit (the same operations per model).
  RNN and LSTM run ``fused/lanes.py`` (the model as the innermost axis: SIMD lanes over models, blocks of
  them over the cores); the GRU runs ``fused/many.py`` (the compiled code per model, models over the
  cores). Cross-entropy, CPU.
- :func:`fit_stacked` (``stacked``): the K models as one torch module with stacked weights
  (``stacked.py``), on any device (``cuda`` too) and with either loss; equal to training each model
  alone to float round-off.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .device import resolve_device
from .exam import protocol as exam
from .fitting import FitResult
from .model import CharModel
from .step import check_finite


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
    from .fused.compiled import check_supported

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


def _to_lanes(a: np.ndarray, lanes: int) -> np.ndarray:
    """(K, ...) -> (blocks, ..., lanes): the model axis split into blocks, innermost in each; K is padded
    with copies of the last model (their results are dropped)."""
    K = a.shape[0]
    blocks = -(-K // lanes)
    padded = np.concatenate([a, np.repeat(a[-1:], blocks * lanes - K, axis=0)]) if blocks * lanes > K else a
    split = padded.reshape(blocks, lanes, *a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(split, 1, -1))


def _from_lanes(a: np.ndarray, K: int) -> np.ndarray:
    """(blocks, ..., lanes) -> (K, ...)."""
    merged = np.moveaxis(a, -1, 1)
    return merged.reshape(-1, *merged.shape[2:])[:K]


def _train_lanes(family, relu, dtype, xs, targets, arrays, adam, losses, correct, probs) -> np.ndarray:
    """fused/lanes.py's kernel on (K, ...) arrays, in place; returns each model's completed epochs (K,)."""
    from .fused.lanes import LANES, train_lanes

    K, T = arrays[0].shape[0], xs.shape[0]
    laned = [_to_lanes(a, LANES) for a in arrays]
    out_losses, out_correct, out_probs = (_to_lanes(a, LANES) for a in (losses, correct, probs))
    done = train_lanes(family, relu, dtype is np.float32, dtype(1), xs, targets, dtype(1 / T), *laned,
                       _to_lanes(adam, LANES), out_losses, out_correct, out_probs)
    for array, lanes in zip((*arrays, losses, correct, probs), (*laned, out_losses, out_correct, out_probs)):
        array[...] = _from_lanes(lanes, K)
    return np.repeat(done, LANES)[:K]


@torch.no_grad()
def fit_many(models: Sequence[CharModel], x: Tensor, y: Tensor, *, epochs: int,
             lrs: float | Sequence[float] = exam.LR) -> list[FitResult]:
    """Train each model in place on (x, y) for ``epochs``, model k with learning rate ``lrs[k]``.

    Any formulation works as a source of weights (its layer and head weights are what is trained); one
    layer, one-hot input, no dropout, as the compiled engine. Returns one :class:`FitResult` per model.
    """
    from .fused.compiled import FAMILY_CODES, adam_scalars
    from .fused.many import train_many

    if epochs < 1:
        raise ValueError(f"many: epochs must be >= 1, got {epochs}")
    lrs = [float(lrs)] * len(models) if isinstance(lrs, (int, float)) else [float(lr) for lr in lrs]
    if len(lrs) != len(models):
        raise ValueError(f"many: got {len(lrs)} learning rates for {len(models)} models")
    bad = [lr for lr in lrs if not lr > 0]
    if bad:
        raise ValueError(f"many: learning rates must be > 0, got {bad[:5]}")
    x, y = x.cpu(), y.cpu()
    _check_alike(models, x)
    arrays = _stacked(models)
    dtype = arrays[0].dtype.type
    xs, targets = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy().astype(arrays[0].dtype))
    K, T, V = len(models), xs.shape[0], targets.shape[1]
    adam = np.stack([np.array([adam_scalars(e, lr, dtype) for e in range(1, epochs + 1)], dtype) for lr in lrs])
    losses, correct = np.zeros((K, epochs), np.float64), np.zeros((K, epochs), np.int64)
    probs = np.empty((K, T, V), dtype)
    config = models[0].config
    if config.family in ("rnn", "lstm"):  # SIMD lanes over models: the model as the innermost axis
        done = _train_lanes(FAMILY_CODES[config.family], config.nonlinearity == "relu", dtype, xs, targets, arrays,
                            adam, losses, correct, probs)
    else:
        done = train_many(FAMILY_CODES[config.family], config.nonlinearity == "relu", dtype is np.float32, dtype(1),
                          xs, targets, dtype(1 / T), *arrays, adam, losses, correct, probs)
    for k, model in enumerate(models):
        if done[k] < epochs:
            check_finite(losses[k, done[k]], f"epoch {done[k] + 1} of model {k} (lr {lrs[k]})")
        for param, trained in zip(_trained_tensors(model), arrays):
            param.copy_(torch.from_numpy(trained[k]))
    return [FitResult(history=[{"epoch": e + 1, "loss": float(losses[k, e]), "accuracy": int(correct[k, e]) / T}
                               for e in range(epochs)], probs=torch.from_numpy(probs[k].copy()))
            for k in range(K)]


def fit_stacked(models: Sequence[CharModel], x: Tensor, y: Tensor, *, epochs: int,
                lrs: float | Sequence[float] = exam.LR, loss: str = "cross_entropy",
                device: str | torch.device = "cpu") -> list[FitResult]:
    """:func:`fit_many` in torch: the models' weights stacked (``StackedRecurrent``), trained together on
    ``device`` by the canonical step with a learning rate per model (``StackedAdam``). The models given
    are left as they were; returns one :class:`FitResult` per model (history and last probs, on the CPU)."""
    from .stacked import StackedAdam, StackedRecurrent, per_model_loss
    from .step import train_step

    if epochs < 1:
        raise ValueError(f"many: epochs must be >= 1, got {epochs}")
    device = resolve_device(device)
    stacked = StackedRecurrent.from_models(models).to(device)
    opt = StackedAdam(stacked.parameters(), lrs)
    x, y = x[:, None].to(device), y.to(device)  # (T, 1, I): one sequence shared by the K models
    labels = y.argmax(-1)[:, None]  # (T, 1)
    histories: list[list[dict]] = [[] for _ in models]
    for epoch in range(1, epochs + 1):
        logits, _, _ = train_step(stacked, x, y, lambda out, t: per_model_loss(loss, out, t).sum(), opt,
                                  where=f"epoch {epoch}")
        with torch.no_grad():
            losses = per_model_loss(loss, logits, y).tolist()
            accuracy = (logits[:, :, 0].argmax(-1) == labels).float().mean(0).tolist()
        for history, value, acc in zip(histories, losses, accuracy):
            history.append({"epoch": epoch, "loss": value, "accuracy": acc})
    probs = logits.detach()[:, :, 0].softmax(-1).cpu()  # (T, K, V)
    return [FitResult(history=h, probs=probs[:, k].contiguous()) for k, h in enumerate(histories)]
