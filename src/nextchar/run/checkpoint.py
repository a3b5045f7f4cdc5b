"""Checkpoints as plain data in one safetensors file, written atomically.

Tensors: ``model.*`` (the state dict), ``optim.<param>.<key>`` (optimizer state), ``rng.cpu`` /
``rng.cuda.<i>`` (generator states), ``carry.<i>`` (the hidden state carried between windows),
``history.step_losses`` (every step's training loss, float64).
Metadata ``nextchar`` (JSON): format and version, model and training config, vocabulary in its exact
order, step, epoch, best validation loss, the optimizer's name, param groups and scalar state, the
evaluations so far, the training text's fingerprint (characters and SHA-256), the run's wall time and the
length of a schedule estimated from a time budget.
Nothing is pickled, so a checkpoint loads anywhere, on a CPU-only machine too. A checkpoint is its
run's source of truth: the history it holds always has exactly ``step`` losses.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import Tensor

from ..cells import State
from ..config import ModelConfig
from ..model import CharModel
from ..outputs import write_bytes_atomic
from ..vocab import Vocab
from .checkpoint_header import CARRY_PARTS, FORMAT, VERSION, CheckpointError, check_checkpoint_file


@dataclass(kw_only=True)
class Checkpoint:
    """One saved moment of a run; every field is named where it is built."""

    model_config: ModelConfig
    vocab: Vocab
    model_state: dict[str, Tensor]
    step: int = 0
    epoch: int = 0
    best_val_loss: float | None = None
    train_config: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    """``torch.optim`` state dict, rebuilt from the file."""
    optimizer_name: str | None = None
    rng: dict[str, Tensor] = field(default_factory=dict)
    carry: State | None = None
    evals: list[dict] = field(default_factory=list)
    """Every evaluation up to ``step`` (what history.json shows)."""
    step_losses: list[float] | None = field(default_factory=list)
    """Every step's training loss: ``step`` of them (None: a checkpoint from before histories were kept)."""
    text: dict[str, Any] = field(default_factory=dict)
    """The training text's fingerprint: ``{'chars': N, 'sha256': ...}`` (empty if unknown)."""
    seconds: float = 0.0
    """Wall time since the run began, summed over resumes (0 in checkpoints from before it was kept)."""
    schedule_steps: int | None = None
    """The learning-rate schedule's length in steps, when it was estimated from a --max-time budget."""

    def build_model(self, device: str | torch.device = "cpu") -> CharModel:
        """A model of the saved config holding the saved weights; non-finite weights are refused."""
        bad = [name for name, t in self.model_state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise CheckpointError(f"checkpoint: weights {bad[:5]} hold NaN or infinite values; this model cannot "
                                  "predict or generate (resume from an earlier checkpoint with a lower --lr)")
        model = CharModel(self.model_config)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as error:
            raise CheckpointError(f"checkpoint: weights do not fit the saved model config: {error}") from None
        return model.to(device)

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Load the saved optimizer state into ``optimizer`` (built for this checkpoint's model)."""
        if self.optimizer is None:
            return
        try:
            optimizer.load_state_dict(self.optimizer)
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint: its optimizer state does not fit the model: {error}"[:400]) from None


def _optimizer_to_flat(state_dict: dict) -> tuple[dict[str, Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically: a temp file in the same folder, fsync, rename."""
    path = Path(path)
    tensors = {f"model.{k}": v for k, v in checkpoint.model_state.items()}
    optimizer_meta = None
    if checkpoint.optimizer is not None:
        optim_tensors, optimizer_meta = _optimizer_to_flat(checkpoint.optimizer)
        tensors.update(optim_tensors)
    tensors.update({f"rng.{k}": v for k, v in checkpoint.rng.items()})
    carry = checkpoint.carry
    carry_kind = "none" if carry is None else "pair" if isinstance(carry, tuple) else "tensor"
    if carry is not None:
        tensors.update({f"carry.{i}": t for i, t in enumerate(carry if isinstance(carry, tuple) else (carry,))})
    if checkpoint.step_losses is not None:
        tensors["history.step_losses"] = torch.tensor(checkpoint.step_losses, dtype=torch.float64)
    meta = {
        "format": FORMAT, "version": VERSION, "model_config": asdict(checkpoint.model_config),
        "vocab": list(checkpoint.vocab.chars), "step": checkpoint.step, "epoch": checkpoint.epoch,
        "best_val_loss": checkpoint.best_val_loss, "train_config": checkpoint.train_config,
        "optimizer_name": checkpoint.optimizer_name, "optimizer": optimizer_meta, "carry": carry_kind,
        "evals": checkpoint.evals, "text": checkpoint.text, "seconds": checkpoint.seconds,
        "schedule_steps": checkpoint.schedule_steps,
    }
    payload = save_bytes({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()},
                         metadata={"nextchar": json.dumps(meta, allow_nan=False)})
    return write_bytes_atomic(path, payload)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint onto the CPU (whatever device it was trained on). Its header and metadata are
    checked before anything is built (``checkpoint_header.py``); anything else is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {str(path)!r} does not exist or is not a file")
    raw = path.read_bytes()
    meta, config, vocab = check_checkpoint_file(raw, path)
    try:
        tensors = load_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint: {str(path)!r} is corrupt: {error}"[:400]) from None
    parts = CARRY_PARTS[meta["carry"]]
    carry = [tensors[f"carry.{i}"] for i in range(parts)]
    losses = tensors.get("history.step_losses")
    return Checkpoint(
        model_config=config, vocab=vocab,
        model_state={k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")},
        step=meta["step"], epoch=meta["epoch"], best_val_loss=meta["best_val_loss"],
        train_config=meta["train_config"], optimizer_name=meta["optimizer_name"],
        optimizer=_optimizer_from_flat(tensors, meta["optimizer"]) if meta["optimizer"] else None,
        rng={k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")},
        carry=None if not carry else tuple(carry) if len(carry) == 2 else carry[0],
        evals=meta.get("evals") or [], step_losses=None if losses is None else losses.tolist(),
        text=meta.get("text") or {}, seconds=meta.get("seconds", 0.0), schedule_steps=meta.get("schedule_steps"),
    )


def rng_states() -> dict[str, Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def restore_rng(states: dict[str, Tensor]) -> None:
    if "cpu" in states:
        torch.set_rng_state(states["cpu"])
    cuda = [states[f"cuda.{i}"] for i in range(len(states)) if f"cuda.{i}" in states]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
