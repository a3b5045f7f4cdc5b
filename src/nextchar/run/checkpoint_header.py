"""A checkpoint is untrusted input: its safetensors header and nextchar metadata are checked here, field by
field and tensor by tensor, before any tensor is read or any model is built.

The expected tensors come from the model the metadata describes, built on torch's ``meta`` device (shapes
without memory), so a file cannot ask for more memory than it holds: every tensor's name, dtype and shape
must be what that model, its optimizer state, the RNG states, the carried state and the history need.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig, TrainConfig, check_field_types
from ..model import CharModel
from ..step import OPTIMIZERS
from ..vocab import Vocab

FORMAT, VERSION = "nextchar-checkpoint", 1
REQUIRED_META = ("model_config", "vocab", "step", "epoch", "best_val_loss", "train_config", "optimizer_name",
                 "optimizer", "carry")
CARRY_PARTS = {"none": 0, "tensor": 1, "pair": 2}
"""The carried state's kinds in the metadata and how many ``carry.<i>`` tensors each one has (pair: h and c)."""
MAX_HEADER_BYTES = 64 << 20
"""A header past this is refused unparsed (a run's evaluations take a few hundred bytes each)."""
OPTIMIZER_STATE = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg"}
"""Per-parameter state tensors of torch's Adam, AdamW, SGD and RMSprop (each shaped like its parameter)."""
NEEDED_STATE = {"adam": {"step", "exp_avg", "exp_avg_sq"}, "adamw": {"step", "exp_avg", "exp_avg_sq"},
                "rmsprop": {"step", "square_avg"}, "sgd": set()}
"""What each optimizer's step reads for every parameter once it has stepped."""
MAX_VOCAB = 0x110000 - 0x800
"""Unicode's scalar values (code points less surrogates): no vocabulary of distinct characters has more."""
GROUP_NUMBERS = ("lr", "eps", "weight_decay", "momentum", "alpha", "dampening", "initial_lr")
GROUP_FLAGS = ("amsgrad", "maximize", "nesterov", "centered", "capturable", "differentiable", "foreach", "fused",
               "decoupled_weight_decay")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit."""


class _Check:
    """Raises one-line :class:`CheckpointError` messages that name the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str) -> None:
        raise CheckpointError(f"checkpoint: {str(self.path)!r} {message}"[:400])

    def that(self, ok: bool, message: str) -> None:
        if not ok:
            self.fail(message)


def _parse_json(text: bytes | str, check: _Check, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        check.fail(f"is not a nextchar checkpoint ({what} is not valid JSON)")


def read_header(raw: bytes, check: _Check) -> tuple[dict, dict]:
    """The safetensors header (tensor name -> dtype, shape, offsets) and the nextchar metadata, both parsed."""
    size = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    check.that(0 < size <= len(raw) - 8,
               f"is not a nextchar checkpoint (a safetensors header of {size} bytes in a {len(raw)}-byte file)")
    check.that(size <= MAX_HEADER_BYTES,
               f"has a header of {size:,} bytes, more than the {MAX_HEADER_BYTES >> 20} MiB nextchar reads: its "
               "metadata (the vocabulary, the history) is too large for a checkpoint nextchar writes")
    header = _parse_json(raw[8:8 + size], check, "the safetensors header")
    check.that(isinstance(header, dict) and isinstance(header.get("__metadata__"), dict)
               and isinstance(header["__metadata__"].get("nextchar"), str),
               "is not a nextchar checkpoint (no nextchar metadata in a safetensors header)")
    meta = _parse_json(header.pop("__metadata__")["nextchar"], check, "its nextchar metadata")
    check.that(isinstance(meta, dict), "has nextchar metadata that is not a JSON object")
    check.that(meta.get("format") == FORMAT and meta.get("version") == VERSION,
               f"has format {str(meta.get('format'))[:40]!r} version {str(meta.get('version'))[:10]!r}, "
               f"expected {FORMAT!r} version {VERSION}")
    missing = [key for key in REQUIRED_META if key not in meta]
    check.that(not missing, f"lacks metadata {missing}; it was not written by nextchar or was edited")
    for name, entry in header.items():
        check.that(isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                   and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in entry["shape"]),
                   f"has a malformed header entry for tensor {name[:60]!r}")
    return header, meta


def checked_configs(meta: dict, check: _Check) -> tuple[ModelConfig, Vocab, dict]:
    """The model config and vocabulary (each field's type and range), and the training config's fields."""
    model, chars, train = meta["model_config"], meta["vocab"], meta["train_config"]
    check.that(isinstance(model, dict), "has a model config that is not a JSON object")
    check.that(isinstance(chars, list), "has a vocabulary that is not a list of characters")
    check.that(len(chars) <= MAX_VOCAB, f"has a vocabulary of {len(chars):,} entries, too large: Unicode has "
                                        f"{MAX_VOCAB:,} characters")
    check.that(isinstance(train, dict), "has a training config that is not a JSON object")
    if model.get("engine") == "compiled":  # written before the compiled trainer was asked for by name
        model = {**model, "engine": "fused"}
    try:
        check_field_types(ModelConfig, model, "model config")
        config, vocab = ModelConfig(**model), Vocab(tuple(chars))
        check_field_types(TrainConfig, train, "training config")
        TrainConfig(**train)
    except (TypeError, ValueError) as error:
        check.fail(f"has an invalid config or vocabulary: {error}")
    check.that(config.vocab_size == len(vocab),
               f"has a model for {config.vocab_size} characters but a vocabulary of {len(vocab)}")
    _check_scalars(meta, check)
    return config, vocab, train


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_scalars(meta: dict, check: _Check) -> None:
    step = meta["step"]
    check.that(_count(step), f"has step {str(step)[:40]}, expected an integer >= 0")
    check.that(_count(meta["epoch"]), f"has epoch {str(meta['epoch'])[:40]}, expected an integer >= 0")
    best = meta["best_val_loss"]
    check.that(best is None or _number(best), f"has best_val_loss {str(best)[:40]}, expected a finite number or null")
    check.that(meta["optimizer_name"] is None or meta["optimizer_name"] in OPTIMIZERS,
               f"has optimizer {str(meta['optimizer_name'])[:40]!r}, expected one of {tuple(OPTIMIZERS)}")
    check.that(meta["carry"] in CARRY_PARTS,
               f"has carry {str(meta['carry'])[:40]!r}, expected 'none', 'pair' or 'tensor'")
    evals = meta.get("evals") or []
    check.that(isinstance(evals, list) and len(evals) <= step and all(
        isinstance(e, dict) and _count(e.get("step")) and 0 < e["step"] <= step
        and all(v is None or _number(v) for v in e.values()) for e in evals),
        f"has evaluations that are not records of steps 1..{step} with numbers")
    seconds, schedule_steps = meta.get("seconds", 0.0), meta.get("schedule_steps")
    check.that(_number(seconds) and seconds >= 0, f"has seconds {str(seconds)[:40]}, expected a finite number >= 0")
    check.that(schedule_steps is None or _count(schedule_steps),
               f"has schedule_steps {str(schedule_steps)[:40]}, expected an integer >= 0 or null")
    text = meta.get("text") or {}
    check.that(isinstance(text, dict)
               and (not text or (_count(text.get("chars")) and isinstance(text.get("sha256"), str))),
               "has a text fingerprint that is not {'chars': N, 'sha256': '...'}")
    optimizer = meta["optimizer"]
    if optimizer is not None:
        groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
        check.that(isinstance(groups, list) and isinstance(optimizer.get("scalars"), dict)
                   and all(_number(v) for v in optimizer["scalars"].values()) and all(_group_ok(g) for g in groups),
                   "has optimizer state that is not param groups of numbers and flags")


def _group_ok(group: Any) -> bool:
    if not isinstance(group, dict) or not isinstance(group.get("params"), list):
        return False
    return (all(_count(p) for p in group["params"])
            and all(_number(group[k]) for k in GROUP_NUMBERS if k in group)
            and all(group[k] is None or isinstance(group[k], bool) for k in GROUP_FLAGS if k in group)
            and ("betas" not in group or (isinstance(group["betas"], list) and len(group["betas"]) == 2
                                          and all(_number(b) for b in group["betas"]))))


def expected_tensors(config: ModelConfig, train: dict, meta: dict, header: dict, check: _Check
                     ) -> dict[str, tuple[str, list[int]] | tuple[str, None]]:
    """Every tensor the checkpoint must (or may) hold: name -> (safetensors dtype, shape); shape None for
    the RNG states, whose length torch decides."""
    model_names = [n for n in header if n.startswith("model.")]
    # a layer has at least 2 tensors: refuse a layer count the file cannot hold before building anything
    check.that(config.num_layers <= len(model_names),
               f"asks for {config.num_layers} layers but holds {len(model_names)} model tensors")
    with torch.device("meta"):  # shapes only, no memory: the model the metadata describes
        model = CharModel(config)
    expected: dict[str, Any] = {f"model.{name}": ("F32", list(t.shape)) for name, t in model.state_dict().items()}
    shapes = [list(p.shape) for p in model.parameters()]
    for name in header:
        if name.startswith("optim."):
            _, pid, key = (name.split(".", 2) + ["", ""])[:3]
            check.that(pid.isdigit() and int(pid) < len(shapes) and (key in OPTIMIZER_STATE or key == "step"),
                       f"holds optimizer state {name[:60]!r} for no parameter of the model")
            expected[name] = ("F32", [] if key == "step" else shapes[int(pid)])
        elif name.startswith("rng."):
            expected[name] = ("U8", None)
    _check_optimizer_state(header, meta, len(shapes), check)
    parts = CARRY_PARTS[meta["carry"]]
    batch = train.get("batch_size", TrainConfig.batch_size)
    for i in range(parts):
        expected[f"carry.{i}"] = ("F32", [config.num_layers, batch, config.hidden_size])
    if "history.step_losses" in header:
        expected["history.step_losses"] = ("F64", [meta["step"]])
    return expected


def _check_optimizer_state(header: dict, meta: dict, params: int, check: _Check) -> None:
    """Either no parameter has optimizer state or every one has the same keys, all the optimizer needs."""
    keys: dict[int, set[str]] = {}
    for name in header:
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            keys.setdefault(int(pid), set()).add(key)
    for name in (meta["optimizer"] or {}).get("scalars", {}):
        pid, _, key = str(name).partition(".")
        check.that(pid.isdigit() and int(pid) < params, f"has optimizer state {str(name)[:40]!r} for no parameter")
        keys.setdefault(int(pid), set()).add(key)
    if not keys:
        return
    needed = NEEDED_STATE.get(meta["optimizer_name"] or "", set())
    complete = len(keys) == params and len({frozenset(k) for k in keys.values()}) == 1
    check.that(complete and needed <= next(iter(keys.values())),
               f"has optimizer state for {len(keys)} of {params} parameters, or without what "
               f"{meta['optimizer_name']} needs ({sorted(needed)})")


def check_tensors(header: dict, expected: dict, check: _Check) -> None:
    """Exactly the expected names (the history and the optimizer state may be absent), each its dtype and shape."""
    unknown = sorted(set(header) - set(expected))
    check.that(not unknown, f"holds tensors the model does not have: {unknown[:5]}")
    optional = ("optim.", "rng.", "history.")
    missing = sorted(n for n in expected if n not in header and not n.startswith(optional))
    check.that(not missing, f"lacks tensors {missing[:5]} (it does not match its own model config)")
    for name, (dtype, shape) in expected.items():
        if name not in header:
            continue
        entry = header[name]
        check.that(entry.get("dtype") == dtype, f"has tensor {name!r} of dtype {str(entry.get('dtype'))[:10]}, "
                                                 f"expected {dtype}")
        check.that(shape is None or entry["shape"] == shape,
                   f"has tensor {name!r} of shape {entry['shape'][:6]}, expected {shape} for its model config")
        check.that(shape is not None or len(entry["shape"]) == 1, f"has tensor {name!r} that is not 1-D")


def check_checkpoint_file(raw: bytes, path: Path) -> tuple[dict, ModelConfig, Vocab]:
    """The whole check: header, metadata, configs and tensors. Returns the metadata, config and vocabulary."""
    check = _Check(path)
    header, meta = read_header(raw, check)
    config, vocab, train = checked_configs(meta, check)
    check_tensors(header, expected_tensors(config, train, meta, header, check), check)
    return meta, config, vocab
