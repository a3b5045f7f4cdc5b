"""What ``--resume`` may change and what it must keep, checked against the checkpoint.

A resumed run is the same run: whatever defines the model or the data stream must match the checkpoint,
or the resume stops with one message listing every mismatch. Settings that are safe to change take
effect and are recorded in the next checkpoint as what actually ran.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..vocab import Vocab
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .folder import read_history

MUST_MATCH_MODEL = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
"""Every model setting (the vocabulary comes with the checkpoint)."""
MUST_MATCH_TRAIN = ("seq_len", "batch_size", "val_fraction", "optimizer", "seed")
"""The data stream (windows, streams, split), the optimizer's state and the run's RNG seed."""
SAFE_TO_CHANGE = ("lr", "lr_schedule", "warmup_steps", "min_lr", "lr_decay", "lr_decay_every", "lr_decay_after",
                  "weight_decay", "clip", "epochs", "max_steps", "max_time", "eval_every", "device")
"""Take effect on resume: the learning rate (and the schedule over it) and the weight decay are set on the
restored optimizer."""
BEFORE_SCHEDULES = {"lr_schedule": "constant", "warmup_steps": 0}
"""What a checkpoint written before schedules existed ran with (a constant rate, no warmup), where today's
defaults differ, taken when its training config lacks them: the defaults would change an old run's rate."""
FLAGS = {"family": "--model", "kind": "--model", "embedding_dim": "--embedding-dim"}
"""Flags whose name is not the field's with dashes."""


class ResumeMismatchError(ValueError):
    """A resume whose settings or text differ from the checkpoint's."""


def text_fingerprint(text: str) -> dict[str, Any]:
    return {"chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def resumed_configs(checkpoint, model: ModelConfig | dict | None, train: TrainConfig | dict | None
                    ) -> tuple[ModelConfig, TrainConfig]:
    """The configs a resume runs: the checkpoint's, updated by what was given (a dict: only what changes)."""
    saved_train = {f.name: checkpoint.train_config.get(f.name, BEFORE_SCHEDULES.get(f.name, f.default))
                   for f in fields(TrainConfig)}
    if isinstance(model, dict):
        model = ModelConfig(**{**asdict(checkpoint.model_config), **model})
    if isinstance(train, dict):
        train = TrainConfig(**{**saved_train, **train})
    return model or checkpoint.model_config, train or TrainConfig(**saved_train)


def mismatches(checkpoint, model: ModelConfig, train: TrainConfig, fingerprint: dict[str, Any]) -> list[str]:
    """One line per setting that differs from the checkpoint: ``--hidden-size: checkpoint 16, given 32``."""
    lines = []
    saved_model = checkpoint.model_config
    if (model.family, model.kind) != (saved_model.family, saved_model.kind):
        lines.append(f"--model: checkpoint {saved_model.formulation}, given {model.formulation}")
    for name in MUST_MATCH_MODEL:
        if name not in ("family", "kind"):
            _compare(lines, name, getattr(saved_model, name), getattr(model, name))
    for name in MUST_MATCH_TRAIN:
        if name in checkpoint.train_config:
            _compare(lines, name, checkpoint.train_config[name], getattr(train, name))
    saved_text = checkpoint.text
    if saved_text and saved_text != fingerprint:
        lines.append(f"the text: checkpoint trained on {saved_text['chars']} characters (sha256 "
                     f"{saved_text['sha256'][:12]}...), given {fingerprint['chars']} characters (sha256 "
                     f"{fingerprint['sha256'][:12]}...)")
    return lines


def _compare(lines: list[str], name: str, saved, given) -> None:
    if saved != given:
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        shown = {None: "none"} if name != "embedding_dim" else {None: "0 (one-hot)"}
        lines.append(f"{flag}: checkpoint {shown.get(saved, saved)}, given {shown.get(given, given)}")


def check_resume(checkpoint, model: ModelConfig, train: TrainConfig, fingerprint: dict[str, Any]) -> None:
    """``fingerprint``: :func:`text_fingerprint` of the text given."""
    found = mismatches(checkpoint, model, train, fingerprint)
    if found:
        raise ResumeMismatchError(
            "train: --resume must keep what defines the model and the data stream; these differ from the "
            "checkpoint:\n  " + "\n  ".join(found) + "\n(leave them out to take the checkpoint's, or train into "
            "another --out)")


def vocab_and_checkpoint(text: str, run_dir: Path, resume: bool) -> tuple[Vocab, Checkpoint | None]:
    """The text's vocabulary for a new run; for a resume, the checkpoint's (which must cover the text) and the
    checkpoint, its history exactly ``step`` losses long."""
    if not text:
        raise ValueError("train: the training text is empty")
    if not resume:
        return Vocab.from_text(text), None
    checkpoint = load_checkpoint(run_dir / "last.safetensors")
    missing = checkpoint.vocab.unknown(text)
    if missing:
        raise CheckpointError(f"checkpoint: its vocabulary lacks characters of this text: {missing[:20]!r}; "
                              "resume with the text it was trained on")
    if checkpoint.step_losses is None:  # written before checkpoints held the history: take history.json's
        checkpoint.evals, checkpoint.step_losses = _legacy_history(run_dir, checkpoint.step)
    if len(checkpoint.step_losses) != checkpoint.step:
        raise CheckpointError(f"checkpoint: {str(run_dir / 'last.safetensors')!r} holds {len(checkpoint.step_losses)} "
                              f"step losses for step {checkpoint.step}")
    return checkpoint.vocab, checkpoint


def _legacy_history(run_dir: Path, step: int) -> tuple[list[dict], list[float]]:
    """history.json cut to the checkpoint's step; refused when it holds fewer losses than that."""
    history = read_history(run_dir)
    if len(history["step_losses"]) < step:
        raise CheckpointError(f"checkpoint: {str(run_dir / 'history.json')!r} holds {len(history['step_losses'])} "
                              f"step losses for the checkpoint's step {step}; this run cannot be resumed exactly")
    return [e for e in history["evals"] if e["step"] <= step], history["step_losses"][:step]
