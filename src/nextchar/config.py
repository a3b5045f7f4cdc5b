"""Typed settings of a model and of a training run; ``asdict`` of both goes into every checkpoint.

Each default is declared here once: the CLI reads its defaults and help text from these fields
(:func:`field_default`, :func:`field_help`).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from .cells import ALL_FAMILIES, FAMILIES, MIN_FAMILIES, NONLINEARITIES
from .engines import ENGINES
from .step import OPTIMIZERS

# What the recurrence is: the built-in sequence module (nn.RNN/LSTM/GRU), a loop over the built-in
# cell (nn.RNNCell/...), or a loop over the hand-written cell. (How a loop runs is the engine.)
KINDS = ("module", "cell", "scratch")
MIN_KINDS = ("module", "scratch")
"""The minimal families' kinds: module is their parallel scan over each window (``scan.py``), scratch the
hand-written sequential cell under an engine's loop (there is no torch cell)."""
# The hand-written cell's parameters: torch's names (weight_ih, ...) or the exam's two Linear layers.
CELL_STYLES = ("torch", "two-linear")
SCHEDULES = ("constant", "cosine", "linear", "step")
"""Learning-rate schedules of nextchar train (``run/schedule.py`` computes them)."""
FORMULATIONS = tuple(f"{f}{'' if k == 'module' else '-' + k}"
                     for families, kinds in ((FAMILIES, KINDS), (MIN_FAMILIES, MIN_KINDS))
                     for f in families for k in kinds)


def parse_formulation(name: str) -> tuple[str, str]:
    """``'lstm-cell'`` -> ``('lstm', 'cell')``; ``'gru'`` -> ``('gru', 'module')``."""
    if name not in FORMULATIONS:
        raise ValueError(f"model: formulation must be one of {FORMULATIONS}, got {name!r}")
    family, _, kind = name.partition("-")
    return family, kind or "module"


@dataclass
class ModelConfig:
    vocab_size: int
    """Number of characters; the head's output size (and the one-hot input size)."""
    family: str = "lstm"
    """Recurrent cell: rnn, lstm, gru, mingru or minlstm."""
    kind: str = "module"
    """module (nn.RNN/LSTM/GRU; the minimal families' parallel scan), cell (loop over nn.*Cell) or scratch
    (loop over the hand-written cell)."""
    hidden_size: int = 256
    """Width of the hidden state h (and c for the LSTM)."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    dropout: float = 0.0
    """Dropout on each layer's output (between layers and before the head); 0 disables it."""
    nonlinearity: str = "tanh"
    """The plain RNN's activation: tanh or relu."""
    embedding_dim: int | None = None
    """Learned embedding of this size as input; None (0 on the command line) feeds one-hot vectors."""
    cell_style: str = "torch"
    """scratch only: parameters as weight_ih/... (torch) or as the exam's i2h/h2h Linear layers (two-linear)."""
    engine: str = "autograd"
    """scratch only: autograd (step by step) or fused (compiled forward and backward-through-time under
    autograd, torch's optimizers). Whole compiled epochs are a trainer, not an engine:
    ``fit(..., trainer="compiled")``."""

    def __post_init__(self) -> None:
        checks = [
            (self.family in ALL_FAMILIES, f"family must be one of {ALL_FAMILIES}, got {self.family!r}"),
            (self.family not in MIN_FAMILIES or self.kind in MIN_KINDS,
             f"{self.family} runs as module (its parallel scan) or scratch (its sequential cell), not {self.kind!r}"),
            (self.family not in MIN_FAMILIES or self.engine == "autograd",
             f"{self.family}'s sequential cell runs on the autograd engine (the fused kernels are rnn, lstm and "
             f"gru's), got {self.engine!r}; its parallel form (kind module) is the fast one"),
            (self.kind in KINDS, f"kind must be one of {KINDS}, got {self.kind!r}"),
            (self.nonlinearity in NONLINEARITIES,
             f"nonlinearity must be one of {NONLINEARITIES}, got {self.nonlinearity!r}"),
            (self.cell_style in CELL_STYLES, f"cell_style must be one of {CELL_STYLES}, got {self.cell_style!r}"),
            (self.engine in ENGINES, f"engine must be one of {ENGINES}, got {self.engine!r}"
                                     + ("; the compiled trainer is asked of fit: fit(..., trainer='compiled')"
                                        if self.engine == "compiled" else "")),
            (self.vocab_size >= 1, f"vocab_size must be >= 1, got {self.vocab_size}"),
            (self.hidden_size >= 1, f"hidden_size must be >= 1, got {self.hidden_size}"),
            (self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.embedding_dim is None or self.embedding_dim >= 1,
             f"embedding_dim must be None (one-hot) or >= 1, got {self.embedding_dim}"),
            (self.family not in MIN_FAMILIES or self.cell_style == "torch",
             f"{self.family} has no i2h/h2h form: cell_style must be 'torch', got {self.cell_style!r}"),
            (self.kind == "scratch" or self.cell_style == "torch",
             f"cell_style {self.cell_style!r} needs kind 'scratch', got kind {self.kind!r}"),
            (self.kind == "scratch" or self.engine == "autograd",
             f"engine {self.engine!r} needs kind 'scratch', got kind {self.kind!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"model: {message}")

    @property
    def formulation(self) -> str:
        return self.family if self.kind == "module" else f"{self.family}-{self.kind}"

    @property
    def input_size(self) -> int:
        return self.embedding_dim or self.vocab_size


TRAIN_MODEL_DEFAULTS = {"embedding_dim": 64}
"""What ``nextchar train`` (and ``run.trainer.train``) builds unless told otherwise, where it differs from
ModelConfig's defaults (which are the exam's: one-hot input). An embedding of 64 reached 1.886 in half the
time of one-hot input and a lower loss at every budget of the quality table (PERFORMANCE.md)."""


@dataclass
class TrainConfig:
    """How ``nextchar train`` reads the text and updates the model."""

    seq_len: int = 64
    """Window length of truncated BPTT."""
    batch_size: int = 32
    """Parallel text streams per step, over all processes."""
    epochs: int | None = None
    """Passes over the training text (ignored when max_steps is set); default 1, or until the budget when
    max_time is given alone."""
    max_steps: int | None = None
    """Stop after this many optimizer steps in all (overrides epochs)."""
    lr: float = 1e-2
    """Learning rate (the peak, under a schedule)."""
    lr_schedule: str = "cosine"
    """Learning-rate schedule after the warmup: constant, cosine or linear (to min_lr at the run's end), or
    step (x lr_decay every lr_decay_every epochs from lr_decay_after)."""
    warmup_steps: int = 20
    """Steps of linear warmup to lr (every schedule)."""
    min_lr: float | None = None
    """Where cosine and linear end; default lr / 10."""
    lr_decay: float = 0.97
    """step schedule: the factor at each decay point."""
    lr_decay_every: float = 1.0
    """step schedule: epochs between decay points."""
    lr_decay_after: float = 0.0
    """step schedule: epochs before the first decay point counted (char-rnn: 10)."""
    weight_decay: float | None = None
    """Weight decay; default the optimizer's own (AdamW 0.01, the others 0)."""
    optimizer: str = "adamw"
    """Optimizer: adam, adamw, sgd or rmsprop."""
    clip: float | None = 1.0
    """Global gradient-norm clipping; None or 0 disables it."""
    val_fraction: float = 0.1
    """Share of the text (its end) held out for validation."""
    eval_every: int = 200
    """Steps between validations (and checkpoints)."""
    seed: int = 0
    """Seed of initialisation and dropout."""
    device: str = "auto"
    """Where to compute: auto, cpu, cuda or cuda:N."""
    max_time: float | None = None
    """Wall-time budget of the whole run in seconds, evaluations included, summed over resumes: training stops
    in time to evaluate and save within it (given alone, it trains until the budget)."""

    def __post_init__(self) -> None:
        checks = [
            (self.seq_len >= 1, f"seq_len must be >= 1, got {self.seq_len}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}"),
            (0 < self.lr < math.inf, f"lr must be a finite number > 0, got {self.lr}"),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.min_lr is None or 0 <= self.min_lr <= self.lr,
             f"min_lr must be in [0, lr = {self.lr}], got {self.min_lr}"),
            (0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (0 < self.lr_decay_every < math.inf,
             f"lr_decay_every must be a finite number > 0, got {self.lr_decay_every}"),
            (0 <= self.lr_decay_after < math.inf,
             f"lr_decay_after must be a finite number >= 0, got {self.lr_decay_after}"),
            (self.weight_decay is None or 0 <= self.weight_decay < math.inf,
             f"weight_decay must be a finite number >= 0, got {self.weight_decay}"),
            (self.max_time is None or 0 < self.max_time < math.inf,
             f"max_time must be a finite number of seconds > 0, got {self.max_time}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {tuple(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.clip is None or 0 <= self.clip < math.inf, f"clip must be a finite number >= 0, got {self.clip}"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
            (0 <= self.seed < 2**64, f"seed must be in 0..2**64-1 (torch.manual_seed's range), got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"train: {message}")


def field_default(cls: type, name: str) -> Any:
    """The default a dataclass declares for ``name``."""
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


@cache
def field_help(cls: type) -> dict[str, str]:
    """The one-line docstring under each field of a dataclass (its first sentence, joined on one line)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for field_node, doc in zip(body, body[1:]):
        if (isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name)
                and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)):
            docs[field_node.target.id] = " ".join(str(doc.value.value).split())
    return docs


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def check_field_types(cls: type, values: dict[str, Any], where: str) -> None:
    """Untrusted values (a checkpoint's metadata) must have the types ``cls``'s fields declare: an int is not
    a bool or a float, a float is a finite number, ``X | None`` allows None. Unknown names are refused."""
    declared = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown[:10]}; expected some of {sorted(declared)}")
    for name, value in values.items():
        options = [t.strip() for t in str(declared[name]).split("|")]
        if value is None and "None" in options:
            continue
        allowed = tuple(t for option in options for t in _TYPES.get(option, ()))
        ok = isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool))
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if not ok:
            raise ValueError(f"{where}: {name} must be {' or '.join(options)}, got {value!r} "
                             f"({type(value).__name__})"[:300])
