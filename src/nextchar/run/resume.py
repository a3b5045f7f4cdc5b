"""What ``--resume`` may change and what it must keep, checked against the checkpoint.

A resumed run is the same run: whatever defines the model or the data stream must match the checkpoint,
or the resume stops with one message listing every mismatch. Settings that are safe to change take
effect and are recorded in the next checkpoint as what actually ran.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, fields
from typing import Any

from ..config import ModelConfig, TrainConfig

MUST_MATCH_MODEL = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
"""Every model setting (the vocabulary comes with the checkpoint)."""
MUST_MATCH_TRAIN = ("seq_len", "batch_size", "val_fraction", "optimizer", "seed")
"""The data stream (windows, streams, split), the optimizer's state and the run's RNG seed."""
SAFE_TO_CHANGE = ("lr", "lr_schedule", "warmup_steps", "min_lr", "lr_decay", "lr_decay_every", "lr_decay_after",
                  "weight_decay", "clip", "epochs", "max_steps", "max_time", "eval_every", "device")
"""Take effect on resume: the learning rate (and the schedule over it) and the weight decay are set on the
restored optimizer."""
FLAGS = {"family": "--model", "kind": "--model", "embedding_dim": "--embedding-dim"}
"""Flags whose name is not the field's with dashes."""


class ResumeMismatchError(ValueError):
    """A resume whose settings or text differ from the checkpoint's."""


def text_fingerprint(text: str) -> dict[str, Any]:
    return {"chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def resumed_configs(checkpoint, model: ModelConfig | dict | None, train: TrainConfig | dict | None
                    ) -> tuple[ModelConfig, TrainConfig]:
    """The configs a resume runs: the checkpoint's, updated by what was given (a dict: only what changes)."""
    saved_train = {f.name: checkpoint.train_config.get(f.name, f.default) for f in fields(TrainConfig)}
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
