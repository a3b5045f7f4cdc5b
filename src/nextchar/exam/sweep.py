"""``nextchar sweep``: a grid of seeds x learning rates x hidden sizes x families, trained as many models.

Every configuration's seeds are trained together by the many engine (:func:`many.fit_many`), so seed s
of ``--problem N`` is exactly ``nextchar exam --problem N --seed s``'s initial weights, trained by the
compiled engine (equal to the exam's autograd run to float32 round-off). Under ``torchrun`` the grid's
chunks are split across the ranks and gathered, so every rank returns the one-process result. Per run: final loss, accuracy,
the fitted table; per configuration: loss quantiles, mean accuracy, the share of seeds reaching 100%
accuracy and, for an exam problem, the spread of each entry of the 10x7 table with the exam's seed (or
nextchar's default for the unseeded problems 1 and 4) marked: "is my table typical?".
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..cells import FAMILIES
from ..config import ModelConfig
from ..device import resolve_device
from ..distributed import Distributed
from ..model import CharModel
from ..step import LOSSES
from ..vocab import Vocab, exam_data, next_char_pairs
from . import protocol as exam
from .problems import PROBLEMS, build_problem_model

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
CHUNK = 64
"""Models per compiled call: the progress bar moves once per chunk."""
DEFAULT_MODEL = "rnn"
DEFAULT_HIDDEN_SIZE = exam.HIDDEN_SIZE[DEFAULT_MODEL]
DEFAULT_LR = exam.LR
DEFAULT_EPOCHS = exam.LOOP_EPOCHS
"""Without --problem: the exam's RNN, its learning rate and its cell loops' epochs."""


def parse_seeds(spec: str) -> list[int]:
    """``"N"`` -> 0..N-1; ``"A..B"`` -> A..B inclusive; a comma list of these (``"12345,0..63"``), in order,
    duplicates dropped."""
    seeds: list[int] = []
    for part in str(spec).replace(" ", "").split(","):
        try:
            if ".." in part:
                low, high = (int(v) for v in part.split(".."))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.extend(range(int(part)) if part == str(spec).strip() else [int(part)])
        except ValueError:
            raise ValueError(f"sweep: --seeds must be a count N, a range A..B (A <= B) or a comma list of "
                             f"seeds and ranges, got {spec!r}") from None
    if not seeds or min(seeds) < 0 or max(seeds) > 2**64 - 1:
        raise ValueError(f"sweep: --seeds must give seeds in 0..2**64-1, got {spec!r}")
    return list(dict.fromkeys(seeds))


@dataclass
class SweepRun:
    problem: int | None
    model: str
    family: str
    hidden_size: int
    seed: int
    lr: float
    epochs: int
    loss: str
    final_loss: float
    accuracy: float
    probs_head: list[list[float]]
    """The fitted table: first 10 rows of the last epoch's probabilities, 3 decimals."""


@dataclass
class SweepResult:
    runs: list[SweepRun] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    """One entry per configuration (model, hidden size, lr): quantiles, accuracy, spread."""
    engine: str = "many"
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"runs": [asdict(r) for r in self.runs], "summary": self.summary, "engine": self.engine,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class _Config:
    model: str
    family: str
    hidden_size: int
    lr: float


def _draw(problem: int | None, config: _Config, seed: int, vocab_size: int) -> CharModel:
    """Initial weights as the problem's own code draws them under ``seed`` (or a cell loop's, problem-free)."""
    if problem is not None:
        return build_problem_model(PROBLEMS[problem], seed)
    torch.manual_seed(seed)
    return CharModel(ModelConfig(vocab_size, config.family, "cell", config.hidden_size))


def _data(text: str | None) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    if text is None:
        return exam_data()
    vocab = Vocab.from_text(text)
    return (vocab, *next_char_pairs(text, vocab))


def _epochs(problem: int | None, epochs: int | None) -> int:
    return epochs or (PROBLEMS[problem].epochs if problem is not None else DEFAULT_EPOCHS)


def model_epochs(seeds: Sequence[int], *, lrs: Sequence[float] | None = None,
                 hidden_sizes: Sequence[int] | None = None, models: Sequence[str] | None = None,
                 epochs: int | None = None, problem: int | None = None) -> int:
    """The work of :func:`sweep` with these arguments, in model-epochs (for a progress bar's total)."""
    return len(seeds) * len(_configs(problem, lrs, hidden_sizes, models)) * _epochs(problem, epochs)


def _configs(problem, lrs, hidden_sizes, models) -> list[_Config]:
    if problem is not None:
        if problem not in PROBLEMS:
            raise ValueError(f"sweep: --problem must be one of {tuple(PROBLEMS)}, got {problem}")
        if hidden_sizes or models:
            raise ValueError("sweep: --problem fixes the model and its hidden size; leave out --model and "
                             "--hidden-size (or sweep without --problem)")
        p = PROBLEMS[problem]
        formulation = p.family if p.kind == "module" else f"{p.family}-{p.kind}"
        return [_Config(formulation, p.family, p.hidden_size, lr) for lr in (lrs or [DEFAULT_LR])]
    bad = [m for m in models or [] if m not in FAMILIES]
    if bad:
        raise ValueError(f"sweep: --model must be among {FAMILIES}, got {bad}")
    return [_Config(f, f, h, lr) for f, h, lr in
            itertools.product(models or [DEFAULT_MODEL], hidden_sizes or [DEFAULT_HIDDEN_SIZE],
                                       lrs or [DEFAULT_LR])]


def sweep(seeds: Sequence[int], *, lrs: Sequence[float] | None = None, hidden_sizes: Sequence[int] | None = None,
          models: Sequence[str] | None = None, epochs: int | None = None, problem: int | None = None,
          loss: str = "cross_entropy", text: str | None = None, device: str = "cpu",
          progress: Callable[[int], None] | None = None) -> SweepResult:
    """Train every (configuration, seed) of the grid; ``progress(model_epochs)`` is called as work completes.

    Cross-entropy on the CPU runs the ``many`` engine (compiled, bit-equal to each model alone); ``mse``
    (softmax outputs vs one-hot) or another device runs the ``stacked`` engine (torch, stacked weights).
    """
    if loss not in LOSSES:
        raise ValueError(f"sweep: --loss must be one of {LOSSES}, got {loss!r}")
    if problem is not None and text is not None:
        raise ValueError("sweep: --problem runs on the exam's data; leave out the text")
    seeds = list(seeds)
    configs = _configs(problem, lrs, hidden_sizes, models)
    epochs = _epochs(problem, epochs)
    if epochs < 1:
        raise ValueError(f"sweep: --epochs must be >= 1, got {epochs}")
    vocab, x, y = _data(text)
    device = str(resolve_device(device))
    engine = "many" if loss == "cross_entropy" and device == "cpu" else "stacked"
    result = SweepResult(engine=engine)
    start = time.perf_counter()
    items = [(c, seeds[i:i + CHUNK]) for c in configs for i in range(0, len(seeds), CHUNK)]
    dist = Distributed.from_env()
    mine = {}
    for index in range(dist.rank, len(items), dist.world_size):  # under torchrun each rank takes every W-th chunk
        config, chunk = items[index]
        fits = _train([_draw(problem, config, seed, len(vocab)) for seed in chunk], x, y, epochs, config.lr, loss,
                      engine, device)
        mine[index] = [SweepRun(problem, config.model, config.family, config.hidden_size, seed, config.lr, epochs,
                                loss, f.final_loss, f.history[-1]["accuracy"],
                                [[round(v, 3) for v in row] for row in f.probs[:10].tolist()])
                       for seed, f in zip(chunk, fits)]
        if progress is not None:
            progress(len(chunk) * epochs * dist.world_size)  # the other ranks move at the same pace
    done = dist.gather_objects(mine)
    for config in configs:
        runs = [run for index in sorted(done) if items[index][0] == config for run in done[index]]
        result.runs += runs
        result.summary.append(_summarize(config, runs, problem))
    result.seconds = time.perf_counter() - start
    return result


def _train(models: list[CharModel], x, y, epochs: int, lr: float, loss: str, engine: str, device: str):
    from ..many import fit_many, fit_stacked

    if engine == "many":
        return fit_many(models, x, y, epochs=epochs, lrs=lr)
    return fit_stacked(models, x, y, epochs=epochs, lrs=lr, loss=loss, device=device)


def _summarize(config: _Config, runs: list[SweepRun], problem: int | None) -> dict:
    losses = np.array([r.final_loss for r in runs])
    accuracy = np.array([r.accuracy for r in runs])
    entry = {"model": config.model, "family": config.family, "hidden_size": config.hidden_size, "lr": config.lr,
             "seeds": len(runs), "loss_quantiles": {f"{q:g}": float(np.quantile(losses, q)) for q in QUANTILES},
             "loss_median": float(np.median(losses)), "accuracy_mean": float(accuracy.mean()),
             "solved_fraction": float((accuracy == 1.0).mean())}
    if problem is not None:
        entry["table_spread"] = _spread(runs, PROBLEMS[problem].seed)
    return entry


def _spread(runs: list[SweepRun], reference_seed: int) -> dict:
    """Each entry of the 10x7 table: 5%, median and 95% over the seeds; the reference seed's table and, per
    entry, the share of seeds at or below its value (its percentile)."""
    tables = np.array([r.probs_head for r in runs])  # (S, 10, V)
    spread = {"q05": np.quantile(tables, 0.05, axis=0), "median": np.median(tables, axis=0),
              "q95": np.quantile(tables, 0.95, axis=0)}
    out = {k: v.round(3).tolist() for k, v in spread.items()}
    out["reference_seed"] = reference_seed
    reference = next((r for r in runs if r.seed == reference_seed), None)
    out["reference_in_sweep"] = reference is not None
    if reference is not None:
        table = np.array(reference.probs_head)
        out["reference_table"] = reference.probs_head
        out["reference_percentile"] = (tables <= table).mean(axis=0).round(3).tolist()
        out["reference_outside_5_95"] = int(((table < spread["q05"]) | (table > spread["q95"])).sum())
    return out
