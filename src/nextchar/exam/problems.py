"""The exam's six problems, run by its exact protocol, and the exactness checks (3 = 2, 6 = 5)."""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import torch

from ..config import ModelConfig
from ..engines import COMPILED, model_engine
from ..model import CharModel, copy_weights
from ..run.checkpoint import Checkpoint
from ..run.resume import text_fingerprint
from ..sequence.data import exam_data
from ..sequence.fitting import FitResult, fit
from ..sequence.protocol import (
    DEFAULT_SEED,
    HIDDEN_SIZE,
    LOOP_EPOCHS,
    LR,
    MAPPING,
    MODULE_EPOCHS,
    OPTIMIZER,
    TEXT,
    VOCAB_SIZE,
)
from ..vocab import Vocab


@dataclass(frozen=True)
class Problem:
    number: int
    family: str
    kind: str
    hidden_size: int
    epochs: int
    seed: int
    exam_sets_seed: bool
    title: str
    copies_from: str | None = None
    """For the hand-written cells: the built-in kind whose freshly seeded weights are copied in."""


_RNN, _LSTM = HIDDEN_SIZE["rnn"], HIDDEN_SIZE["lstm"]
PROBLEMS: dict[int, Problem] = {p.number: p for p in (
    Problem(1, "rnn", "module", _RNN, MODULE_EPOCHS, DEFAULT_SEED, False,
            f"nn.RNN({VOCAB_SIZE}, {_RNN}) over the whole sequence"),
    Problem(2, "rnn", "cell", _RNN, LOOP_EPOCHS, 12345, True, f"loop over nn.RNNCell({VOCAB_SIZE}, {_RNN})"),
    Problem(3, "rnn", "scratch", _RNN, LOOP_EPOCHS, 12345, True,
            "hand-written RNN cell (i2h, h2h), weights of problem 2", copies_from="cell"),
    Problem(4, "lstm", "module", _LSTM, MODULE_EPOCHS, DEFAULT_SEED, False,
            f"nn.LSTM({VOCAB_SIZE}, {_LSTM}) over the whole sequence"),
    Problem(5, "lstm", "cell", _LSTM, LOOP_EPOCHS, 43052, True, f"loop over nn.LSTMCell({VOCAB_SIZE}, {_LSTM})"),
    Problem(6, "lstm", "scratch", _LSTM, LOOP_EPOCHS, 43052, True,
            "hand-written LSTM cell (i2h, h2h), weights of problem 5", copies_from="cell"),
)}
# (hand-written problem, the built-in problem it must equal)
EXACTNESS_PAIRS = ((3, 2), (6, 5))


def fitted_table(probs: torch.Tensor) -> list[list[float]]:
    """The exam's printed table of fitted probabilities (T, V): the first 10 rows, 3 decimals (also the
    inside panel's hidden units, (T, H))."""
    return [[round(v, 3) for v in row] for row in probs[:10].tolist()]


@dataclass
class ProblemResult:
    problem: Problem
    seed: int
    epochs: int
    formulation: str
    fit: FitResult
    seconds: float
    engine: str = "autograd"
    model_config: ModelConfig | None = None
    """The trained model's configuration and weights (on the CPU): what its checkpoint holds."""
    model_state: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def probs_head(self) -> list[list[float]]:
        """The exam's printed table: first 10 rows of the fitted probabilities, 3 decimals."""
        return fitted_table(self.fit.probs)

    def checkpoint(self) -> Checkpoint:
        """The trained model as a run's checkpoint (config, the exam's vocabulary in its own order, weights,
        the per-epoch losses as its history), so generate, predict and inspect take it like any other."""
        losses = [entry["loss"] for entry in self.fit.history]
        return Checkpoint(model_config=self.model_config, vocab=Vocab.from_mapping(MAPPING),
                          model_state=self.model_state, step=len(losses), epoch=len(losses), optimizer_name=OPTIMIZER,
                          step_losses=losses, text=text_fingerprint(TEXT))

    def hidden_head(self) -> dict[str, list[list[float]]]:
        """Inside the trained model over the table's 10 positions: h (and the LSTM's c), (10, H), 3 decimals,
        traced through the bit-equal hand-written twin (``inspect.trace``)."""
        from ..inspect.trace import trace

        checkpoint = self.checkpoint()
        layer = trace(checkpoint.build_model(), checkpoint.vocab, TEXT[:10]).layers[0]
        head = {"h": layer.h} if layer.c is None else {"h": layer.h, "c": layer.c}
        return {name: fitted_table(values) for name, values in head.items()}

    def to_json(self) -> dict:
        out = {"probs_head": self.probs_head, "final_loss": self.fit.final_loss, "seed": self.seed,
               "epochs": self.epochs, "formulation": self.formulation, "engine": self.engine,
               "exam_sets_seed": self.problem.exam_sets_seed, "seconds": round(self.seconds, 3)}
        if self.model_config is not None:
            out["inside"] = self.hidden_head()
        return out


def build_problem_model(problem: Problem, seed: int, engine: str = "autograd") -> CharModel:
    """Seed, then build as the exam does; the hand-written cells copy freshly seeded built-in weights.

    ``engine`` applies to the hand-written problems (3, 6): ``autograd`` (the exam's step-by-step loop,
    the default answer), ``fused`` (compiled forward and backward under autograd, torch's Adam) or
    ``compiled`` (a fused model, trained by :func:`run_problem` in whole compiled epochs).
    """
    scratch = problem.kind == "scratch"
    config = ModelConfig(VOCAB_SIZE, problem.family, problem.kind, problem.hidden_size,
                         cell_style="two-linear" if scratch else "torch",
                         engine=model_engine(engine) if scratch else "autograd")
    torch.manual_seed(seed)
    if problem.copies_from is None:
        return CharModel(config)
    reference = CharModel(ModelConfig(VOCAB_SIZE, problem.family, problem.copies_from, problem.hidden_size))
    return copy_weights(reference, CharModel(config))


def run_problem(number: int, seed: int | None = None, epochs: int | None = None,
                device: str = "cpu", engine: str = "autograd",
                progress: Callable[[int], None] | None = None) -> ProblemResult:
    """Run problem ``number`` (1-6) by the exam's protocol; ``seed``/``epochs`` override the exam's;
    ``progress(1)`` is called after each epoch."""
    if number not in PROBLEMS:
        raise ValueError(f"exam: problem must be one of {tuple(PROBLEMS)}, got {number!r}")
    problem = PROBLEMS[number]
    seed = problem.seed if seed is None else seed
    epochs = problem.epochs if epochs is None else epochs
    _, x, y = exam_data()
    start = time.perf_counter()
    model = build_problem_model(problem, seed, engine)
    compiled = engine == COMPILED and problem.kind == "scratch"
    result = fit(model, x, y, epochs=epochs, lr=LR, device=device,
                 callback=None if progress is None else lambda *_: progress(1), trainer=COMPILED if compiled else None)
    return ProblemResult(problem, seed, epochs, model.config.formulation, result, time.perf_counter() - start,
                         COMPILED if compiled else model.config.engine, model.config,
                         {k: v.detach().cpu() for k, v in model.state_dict().items()})


_EPOCHS_DONE = None
"""In a worker process: the epoch counter the parent reads for its progress bar (a shared integer)."""


def _start_worker(counter) -> None:
    global _EPOCHS_DONE
    _EPOCHS_DONE = counter
    torch.set_num_threads(1)


def _count_epoch(n: int) -> None:
    with _EPOCHS_DONE.get_lock():
        _EPOCHS_DONE.value += n


def _run_problem_job(args: tuple) -> ProblemResult:
    return run_problem(*args, progress=_count_epoch if _EPOCHS_DONE is not None else None)


@dataclass
class ExamResult:
    results: dict[int, ProblemResult] = field(default_factory=dict)

    def checks(self) -> dict[str, dict]:
        """Problem 3 vs 2 and 6 vs 5: max |Δ| of the full fitted probabilities, identical tables."""
        out = {}
        for mine, theirs in EXACTNESS_PAIRS:
            if mine in self.results and theirs in self.results:
                a, b = self.results[mine], self.results[theirs]
                out[f"{mine}_vs_{theirs}"] = {
                    "max_abs_diff": (a.fit.probs - b.fit.probs).abs().max().item(),
                    "tables_identical": a.probs_head == b.probs_head,
                    "bit_equal": torch.equal(a.fit.probs, b.fit.probs),
                    "seeds": [a.seed, b.seed],
                }
        return out

    def to_json(self) -> dict:
        return {"problems": {str(n): r.to_json() for n, r in self.results.items()}, "checks": self.checks()}


def run_exam(problems: list[int] | None = None, seeds: dict[int, int] | None = None,
             epochs: int | None = None, device: str = "cpu", jobs: int = 1, engine: str = "autograd",
             progress: Callable[[int], None] | None = None) -> ExamResult:
    """Run several problems; ``jobs`` > 1 runs them in parallel processes (one torch thread each).
    ``progress(n)`` is told of every n epochs done, in any problem."""
    seeds = seeds or {}
    tasks = [(n, seeds.get(n), epochs, device, engine) for n in sorted(problems or PROBLEMS)]
    if jobs > 1 and len(tasks) > 1:
        context = multiprocessing.get_context("spawn")
        counter = context.Value("q", 0)
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context, initializer=_start_worker,
                                 initargs=(counter,)) as pool:
            futures = [pool.submit(_run_problem_job, task) for task in _longest_first(tasks)]
            reported = 0
            while not all(f.done() for f in futures):
                wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                if progress is not None and counter.value > reported:
                    progress(counter.value - reported)
                    reported = counter.value
            results = [f.result() for f in futures]
    else:
        results = [run_problem(*task, progress=progress) for task in tasks]
    return ExamResult({r.problem.number: r for r in sorted(results, key=lambda r: r.problem.number)})


def _longest_first(tasks: list[tuple]) -> list[tuple]:
    """Longest first, so two workers finish together: measured seconds here were
    5: 50, 6: 49 (LSTM cell loops), 1: 41 (nn.RNN, 500 epochs), 3: 22, 2: 18, 4: 3.5."""
    cost = {1: 41, 2: 18, 3: 22, 4: 3.5, 5: 50, 6: 49}
    return sorted(tasks, key=lambda task: -cost[task[0]])
