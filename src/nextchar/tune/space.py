"""The search space of ``nextchar tune``: dimensions named by ``nextchar train``'s flags.

A dimension is ``NAME=SPEC``: ``log:LOW:HIGH`` (log-uniform float), ``float:LOW:HIGH``, ``int:LOW:HIGH[:STEP]``
or ``choice:A,B,C``. The default space is lr (log 1e-4..1e-2), hidden-size {64, 128, 256, 512}, num-layers
1..3, dropout 0..0.5 and model {lstm, gru}; ``--param`` replaces or adds a dimension (once each), and a
train flag given to tune fixes that setting for the study (its dimension goes). Every dimension's ends are
checked by the configs' own validation before a storage is made. Dropout is tuned at any depth: the model
drops the top layer's output before the head (as word_language_model does), so it acts with one layer too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("log", "float", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    name: str
    """The train flag, without dashes (``hidden-size``)."""
    kind: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    choices: tuple[str, ...] = ()

    def spec(self) -> str:
        if self.kind == "choice":
            return "choice:" + ",".join(self.choices)
        bounds = f"{self.low:g}:{self.high:g}" if self.kind != "int" else f"{int(self.low)}:{int(self.high)}"
        return f"{self.kind}:{bounds}" + (f":{self.step}" if self.step else "")


DEFAULT_SPACE = {
    "lr": Dimension("lr", "log", 1e-4, 1e-2),
    "hidden-size": Dimension("hidden-size", "choice", choices=("64", "128", "256", "512")),
    "num-layers": Dimension("num-layers", "int", 1, 3),
    "dropout": Dimension("dropout", "float", 0.0, 0.5),
    "model": Dimension("model", "choice", choices=("lstm", "gru")),
}
TUNABLE = {"model": str, "engine": str, "hidden-size": int, "num-layers": int, "dropout": float, "nonlinearity": str,
           "embedding-dim": int, "seq-len": int, "batch-size": int, "epochs": int, "lr": float, "optimizer": str,
           "clip": float, "val-fraction": float, "seed": int, "lr-schedule": str, "warmup-steps": int,
           "min-lr": float, "weight-decay": float}
"""The flags of ``nextchar train`` a trial may vary, with their types (the others tune sets itself or name
the data: --out, --resume, --max-steps, --eval-every, --corpus, ...)."""


def apply(values: dict[str, str], model: dict, config: dict) -> tuple[dict, dict]:
    """The fixed model and training settings with a trial's flag values put in (as ``nextchar train`` would)."""
    from ..config import ModelConfig, parse_formulation

    model, config = dict(model), dict(config)
    model_fields = set(ModelConfig.__dataclass_fields__)
    for name, text in values.items():
        if name == "model":
            model["family"], model["kind"] = parse_formulation(text)
            continue
        field, value = name.replace("-", "_"), TUNABLE[name](text)
        if field == "embedding_dim":
            value = value or None
        (model if field in model_fields else config)[field] = value
    return model, config


def parse_dimension(text: str) -> Dimension:
    """``NAME=SPEC`` as a :class:`Dimension` of one of the :data:`TUNABLE` train flags."""
    name, sep, spec = text.partition("=")
    name = name.strip().lstrip("-")
    if not sep or not name:
        raise ValueError(f"tune: --param {text!r}: expected NAME=SPEC, e.g. lr=log:1e-4:1e-2")
    if name not in TUNABLE:
        raise ValueError(f"tune: --param {name!r} is not a flag of nextchar train that a trial can vary; expected one "
                         f"of {sorted(TUNABLE)}")
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ValueError(f"tune: --param {text!r}: the spec must start with one of {KINDS}, e.g. int:64:512:64")
    if kind == "choice":
        choices = tuple(c.strip() for c in rest.split(",") if c.strip())
        if not choices:
            raise ValueError(f"tune: --param {text!r}: choice needs at least one value, e.g. choice:lstm,gru")
        return Dimension(name, kind, choices=choices)
    parts = rest.split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"tune: --param {text!r}: bounds must be numbers, e.g. {kind}:1:10") from None
    if len(numbers) not in ((2, 3) if kind == "int" else (2,)) or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"tune: --param {text!r}: expected {kind}:LOW:HIGH" + ("[:STEP]" if kind == "int" else ""))
    low, high = numbers[:2]
    if not low <= high or (kind == "log" and low <= 0):
        raise ValueError(f"tune: --param {text!r}: expected LOW <= HIGH" + (" and LOW > 0" if kind == "log" else ""))
    if kind == "int" and (low != int(low) or high != int(high) or (len(numbers) == 3 and numbers[2] < 1)):
        raise ValueError(f"tune: --param {text!r}: int bounds and step must be whole numbers (step >= 1)")
    return Dimension(name, kind, low, high, int(numbers[2]) if len(numbers) == 3 else None)


def parse_params(params: list[str]) -> dict[str, Dimension]:
    """Each ``--param`` by name; a name given twice is refused (the last one would silently win)."""
    dimensions: dict[str, Dimension] = {}
    for text in params:
        dimension = parse_dimension(text)
        if dimension.name in dimensions:
            raise ValueError(f"tune: --param {dimension.name} is given twice ({dimensions[dimension.name].spec()} and "
                             f"{dimension.spec()}); give each dimension once")
        dimensions[dimension.name] = dimension
    return dimensions


def build_space(params: list[str], fixed: set[str] = frozenset(), model: dict | None = None,
                config: dict | None = None) -> dict[str, Dimension]:
    """The default space, less the flags fixed for the study, with each ``--param`` replacing or adding one;
    every value it can draw checked against the study's fixed ``model`` and ``config`` (train's)."""
    space = {name: d for name, d in DEFAULT_SPACE.items() if name not in fixed}
    for dimension in parse_params(params).values():
        if dimension.name in fixed:
            raise ValueError(f"tune: --{dimension.name} is both fixed (given as a train flag) and a --param")
        space[dimension.name] = dimension
    if not space:
        raise ValueError("tune: the search space is empty: every dimension is fixed; drop a fixed flag or add --param")
    check_values(space, model or {}, config or {})
    return space


def check_values(space: dict[str, Dimension], model: dict, config: dict) -> None:
    """Each dimension's ends (every value, for a choice) put into the fixed settings must pass
    :class:`ModelConfig`'s and :class:`TrainConfig`'s own validation: a range train would refuse is named now,
    not when its first trial starts. A numeric range is an interval, so its ends stand for it."""
    from ..config import TRAIN_MODEL_DEFAULTS, ModelConfig, TrainConfig

    for d in space.values():
        for value in d.choices or _ends(d):
            try:
                trial_model, trial_config = apply({d.name: value}, model, config)
                ModelConfig(**{"vocab_size": 1, **TRAIN_MODEL_DEFAULTS, **trial_model})
                TrainConfig(**trial_config)
            except ValueError as error:
                raise ValueError(f"tune: --param {d.name}={d.spec()}: {value!r} is not a value nextchar train takes "
                                 f"here ({error})") from None


def _ends(d: Dimension) -> tuple[str, str]:
    if d.kind == "int":
        return str(int(d.low)), str(int(d.high))
    return repr(float(d.low)), repr(float(d.high))


def grid_values(space: dict[str, Dimension], points: int = 3) -> dict[str, list]:
    """For ``--sampler grid``: each dimension's values (a numeric range at ``points`` values)."""
    import numpy as np

    grid = {}
    for name, d in space.items():
        if d.kind == "choice":
            grid[name] = list(d.choices)
        elif d.kind == "int":
            grid[name] = list(range(int(d.low), int(d.high) + 1, d.step or 1))
        elif d.kind == "log":
            grid[name] = [float(v) for v in np.geomspace(d.low, d.high, points)]
        else:
            grid[name] = [float(v) for v in np.linspace(d.low, d.high, points)]
    return grid


def suggest(trial, space: dict[str, Dimension]) -> dict[str, str]:
    """The trial's value of each dimension, as a train flag's text."""
    return {name: _ask(trial, d) for name, d in space.items()}


def _ask(trial, d: Dimension) -> str:
    if d.kind == "choice":
        value = trial.suggest_categorical(d.name, list(d.choices))
    elif d.kind == "int":
        value = trial.suggest_int(d.name, int(d.low), int(d.high), step=d.step or 1)
    else:
        value = trial.suggest_float(d.name, d.low, d.high, log=d.kind == "log")
    return str(value)
