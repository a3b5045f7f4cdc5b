"""``nextchar sweep``: a grid of seeds x learning rates x hidden sizes x families, trained as many models.

Every configuration's seeds are trained together by the many engine (:func:`sequence.many.fit_many`), so seed s
of ``--problem N`` is exactly ``nextchar exam --problem N --seed s``'s initial weights, trained by the
compiled engine (equal to the exam's autograd run to float32 round-off). Under ``torchrun`` the grid's
chunks are split across the ranks and gathered, so every rank returns the one-process result. Per run: final
loss, accuracy, the fitted table; per configuration: loss quantiles, mean accuracy, the share of seeds
reaching 100% accuracy and, for an exam problem, the spread of each entry of the 10x7 table with the exam's
seed (or nextchar's default for the unseeded problems 1 and 4) marked: "is my table typical?". The minimal
families (mingru, minlstm: not in the compiled trainer) train on the stacked engine, their K models' scans.
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..budget import check_memory, memory_limit
from ..cells import ALL_FAMILIES, MIN_FAMILIES
from ..config import ModelConfig
from ..device import resolve_device
from ..distributed import Distributed
from ..model import CharModel
from ..sequence import protocol as exam
from ..sequence.data import exam_data
from ..step import LOSSES
from ..vocab import Vocab, next_char_pairs
from .problems import PROBLEMS, build_problem_model, fitted_table

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
CHUNK = 64
"""Models per compiled call: the progress bar moves once per chunk."""
DEFAULT_MODEL = "rnn"
DEFAULT_HIDDEN_SIZE = exam.HIDDEN_SIZE[DEFAULT_MODEL]
DEFAULT_LR = exam.LR
DEFAULT_EPOCHS = exam.LOOP_EPOCHS
"""Without --problem: the exam's RNN, its learning rate and its cell loops' epochs."""


MAX_SEED = 2**64 - 1
"""torch.manual_seed's range ends here."""


@dataclass(frozen=True)
class Seeds:
    """Seeds as ranges in the order given, duplicates dropped, never materialised: ``--seeds 100000000``
    costs nothing until the memory check has accepted the sweep."""

    ranges: tuple[range, ...]

    @property
    def count(self) -> int:
        return sum(r.stop - r.start for r in self.ranges)  # len(range) overflows past 2**63

    def __iter__(self):
        for r in self.ranges:
            yield from r


def parse_seeds(spec: str) -> Seeds:
    """``"N"`` -> 0..N-1; ``"A..B"`` -> A..B inclusive; a comma list of these (``"12345,0..63"``), in order,
    duplicates dropped."""
    text = str(spec).replace(" ", "")
    ranges: list[range] = []
    for part in text.split(","):
        try:
            if ".." in part:
                low, high = (int(v) for v in part.split(".."))
                if high < low:
                    raise ValueError
                wanted = range(low, high + 1)
            else:
                wanted = range(int(part)) if part == text else range(int(part), int(part) + 1)
        except ValueError:
            raise ValueError(f"sweep: --seeds must be a count N, a range A..B (A <= B) or a comma list of "
                             f"seeds and ranges, got {str(spec)[:100]!r}") from None
        if wanted.start < 0 or wanted.stop - 1 > MAX_SEED:
            raise ValueError(f"sweep: --seeds must give seeds in 0..2**64-1, got {str(spec)[:100]!r}")
        ranges.extend(_minus(wanted, ranges))
    seeds = Seeds(tuple(r for r in ranges if r.stop > r.start))
    if not seeds.count:
        raise ValueError(f"sweep: --seeds {str(spec)[:100]} gives no seeds; give a count N >= 1 (seeds 0..N-1), "
                         "a range A..B or a comma list")
    return seeds


def _minus(wanted: range, taken: list[range]) -> list[range]:
    """The parts of ``wanted`` that no range in ``taken`` holds, in order."""
    parts = [wanted]
    for t in taken:
        parts = [piece for p in parts for piece in (range(p.start, min(p.stop, t.start)),
                                                     range(max(p.start, t.stop), p.stop)) if piece.stop > piece.start]
    return parts


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
    final_loss: float | None
    """None for a run that diverged."""
    accuracy: float | None
    probs_head: list[list[float]] | None
    """The fitted table: first 10 rows of the last epoch's probabilities, 3 decimals (None if it diverged)."""
    diverged_at_epoch: int | None = None
    """The epoch whose loss became NaN or infinite; the other runs trained on."""


@dataclass
class SweepResult:
    runs: list[SweepRun] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    """One entry per configuration (model, hidden size, lr): quantiles, accuracy, spread."""
    engine: str = "many"
    seconds: float = 0.0
    interrupted: bool = False
    """Stopped by Ctrl-C: ``runs`` holds the chunks that finished."""

    def to_json(self) -> dict:
        return {"runs": [asdict(r) for r in self.runs], "summary": self.summary, "engine": self.engine,
                "seconds": round(self.seconds, 3), "interrupted": self.interrupted}


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
    return CharModel(ModelConfig(vocab_size, config.family, _kind(config.family), config.hidden_size))


def _kind(family: str) -> str:
    """The formulation a problem-free sweep draws and trains: the built-in cell's loop, whose weights the many
    engine takes; a minimal family's parallel scan (it has no built-in cell)."""
    return "module" if family in MIN_FAMILIES else "cell"


def _engine(config: _Config, loss: str, device: str) -> str:
    """many (compiled, cross-entropy on the CPU) or stacked (torch, stacked weights: another loss or device,
    and the minimal families, which the compiled trainer does not run: their K models' scans at once)."""
    if config.family in MIN_FAMILIES:
        return "stacked"
    return "many" if loss == "cross_entropy" and device == "cpu" else "stacked"


def _data(text: str | None) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    if text is None:
        return exam_data()
    vocab = Vocab.from_text(text)
    return (vocab, *next_char_pairs(text, vocab))


def _epochs(problem: int | None, epochs: int | None) -> int:
    return epochs or (PROBLEMS[problem].epochs if problem is not None else DEFAULT_EPOCHS)


def model_epochs(seeds: Seeds | Sequence[int], *, lrs: Sequence[float] | None = None,
                 hidden_sizes: Sequence[int] | None = None, models: Sequence[str] | None = None,
                 epochs: int | None = None, problem: int | None = None) -> int:
    """The work of :func:`sweep` with these arguments, in model-epochs (for a progress bar's total)."""
    return _count(seeds) * len(_configs(problem, lrs, hidden_sizes, models)) * _epochs(problem, epochs)


def _count(seeds: Seeds | Sequence[int]) -> int:
    return seeds.count if isinstance(seeds, Seeds) else len(seeds)


RUN_BYTES = 4096
"""One run's record in the result (its 10 x V table as Python floats, its summary share), generously."""


def _chunk_size(config: _Config, runs: int, x: torch.Tensor, y: torch.Tensor, epochs: int, vocab_size: int) -> int:
    """Models per compiled call: CHUNK, or fewer where CHUNK would not fit in memory; refuses (with the
    numbers) a sweep whose results or even one model do not fit."""
    from ..sequence.many import models_memory

    with torch.device("meta"):  # a model's size without its memory (or the random state)
        model = CharModel(ModelConfig(vocab_size, config.family, _kind(config.family), config.hidden_size))
    one = models_memory([model], x, epochs)
    limit = memory_limit()
    results = runs * RUN_BYTES
    check_memory(results + one, f"sweep: {runs:,} runs of {epochs:,} epochs on {x.shape[0]:,} steps",
                 "sweep fewer --seeds, --lr, --hidden-size or --model values, fewer --epochs, or a shorter --text-file")
    return max(1, min(CHUNK, (limit - results) // one))


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
    bad = [m for m in models or [] if m not in ALL_FAMILIES]
    if bad:
        raise ValueError(f"sweep: --model must be among {ALL_FAMILIES}, got {bad}")
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
    bad = [lr for lr in lrs or [] if not (math.isfinite(lr) and lr > 0)]
    if bad:
        raise ValueError(f"sweep: --lr must be finite and > 0, got {bad[:5]}")
    configs = _configs(problem, lrs, hidden_sizes, models)
    epochs = _epochs(problem, epochs)
    if epochs < 1:
        raise ValueError(f"sweep: --epochs must be >= 1, got {epochs}")
    vocab, x, y = _data(text)
    chunk_size = min(_chunk_size(c, _count(seeds) * len(configs), x, y, epochs, len(vocab)) for c in configs)
    seeds = list(seeds)  # accepted: the results fit in memory, so the seeds do
    device = str(resolve_device(device))
    engines = {config: _engine(config, loss, device) for config in configs}
    result = SweepResult(engine=", ".join(sorted(set(engines.values()))))
    start = time.perf_counter()
    items = [(c, seeds[i:i + chunk_size]) for c in configs for i in range(0, len(seeds), chunk_size)]
    dist = Distributed.from_env()
    mine = {}
    try:
        for index in range(dist.rank, len(items), dist.world_size):  # under torchrun each rank takes every W-th
            config, chunk = items[index]
            fits = _train([_draw(problem, config, seed, len(vocab)) for seed in chunk], x, y, epochs, config.lr,
                          loss, engines[config], device, [f"seed {seed}" for seed in chunk])
            mine[index] = [_run(problem, config, seed, epochs, loss, f) for seed, f in zip(chunk, fits)]
            if progress is not None:
                progress(len(chunk) * epochs * dist.world_size)  # the other ranks move at the same pace
    except KeyboardInterrupt:
        if dist.enabled:
            raise
        result.interrupted = True  # keep what finished: the caller writes it
    done = dist.gather_objects(mine)
    for config in configs:
        runs = [run for index in sorted(done) if items[index][0] == config for run in done[index]]
        result.runs += runs
        result.summary.append(_summarize(config, runs, problem))
    result.seconds = time.perf_counter() - start
    return result


def _train(models: list[CharModel], x, y, epochs: int, lr: float, loss: str, engine: str, device: str,
           labels: list[str]):
    """Diverging models are recorded, not raised: one bad configuration never costs the rest of the sweep."""
    from ..sequence.many import fit_many, fit_stacked

    if engine == "many":
        return fit_many(models, x, y, epochs=epochs, lrs=lr, labels=labels, diverged="record")
    return fit_stacked(models, x, y, epochs=epochs, lrs=lr, loss=loss, device=device, labels=labels,
                       diverged="record")


def _run(problem: int | None, config: _Config, seed: int, epochs: int, loss: str, fit) -> SweepRun:
    run = (problem, config.model, config.family, config.hidden_size, seed, config.lr, epochs, loss)
    epoch = fit.diverged_at()
    if epoch is not None:
        return SweepRun(*run, None, None, None, epoch)
    return SweepRun(*run, fit.final_loss, fit.history[-1]["accuracy"], fitted_table(fit.probs))


def _summarize(config: _Config, runs: list[SweepRun], problem: int | None) -> dict:
    """Quantiles and means over the runs that finished; the diverged ones are counted (and their first epoch)."""
    finished = [r for r in runs if r.diverged_at_epoch is None]
    failed = [r for r in runs if r.diverged_at_epoch is not None]
    entry = {"model": config.model, "family": config.family, "hidden_size": config.hidden_size, "lr": config.lr,
             "seeds": len(runs), "diverged": len(failed),
             "first_divergence": min(((r.diverged_at_epoch, r.seed) for r in failed), default=None)}
    if not finished:
        return {**entry, "loss_quantiles": None, "loss_median": None, "accuracy_mean": None, "solved_fraction": None}
    losses = np.array([r.final_loss for r in finished])
    accuracy = np.array([r.accuracy for r in finished])
    entry.update({"loss_quantiles": {f"{q:g}": float(np.quantile(losses, q)) for q in QUANTILES},
                  "loss_median": float(np.median(losses)), "accuracy_mean": float(accuracy.mean()),
                  "solved_fraction": float((accuracy == 1.0).mean())})
    if problem is not None:
        entry["table_spread"] = _spread(finished, PROBLEMS[problem].seed)
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
