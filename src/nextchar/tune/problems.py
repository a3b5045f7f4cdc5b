"""Exam-size studies: ``nextchar tune --problem N``. The sampler is asked for a batch of trials at once
(Optuna's ask-and-tell), and the batch trains as one call of the many engine (``sequence.many.fit_many``: each
model bit-equal to training it alone), so a study of a thousand exam models takes as long as the many
engine takes to train them. A trial is one model of problem N by the exam's protocol (its formulation,
hidden size, Adam, the whole sequence per epoch), scored by its final training loss; its dimensions are
the learning rate and the initialisation seed. A diverging model is a failed trial with its reason.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from .space import Dimension, check_values, parse_params, suggest

METRIC = "final_loss"
EXAM_SPACE = {"lr": Dimension("lr", "log", 1e-3, 1.0), "seed": Dimension("seed", "int", 0, 2**31 - 1)}
"""The default: the learning rate log-uniform 1e-3..1 and the initialisation seed."""


def problem_space(params: Sequence[str]) -> dict[str, Dimension]:
    space = dict(EXAM_SPACE)
    for dimension in parse_params(list(params)).values():
        if dimension.name not in EXAM_SPACE:
            raise ValueError(f"tune: --problem studies vary {sorted(EXAM_SPACE)}; --param {dimension.name!r} is a "
                             "setting the exam's protocol fixes")
        space[dimension.name] = dimension
    check_values(space, {}, {})  # a learning rate > 0 and a seed torch takes, as train checks them
    return space


def tune_problem(number: int, trials: int, out: str | Path, *, params: Sequence[str] = (), epochs: int | None = None,
                 batch: int = 256, sampler: str = "tpe", seed: int = 0, storage: str | None = None,
                 study: str | None = None, progress: bool = True):
    """Run (or resume) a study of exam problem ``number`` until it holds ``trials`` finished trials, asking
    for ``batch`` at a time. Returns a :class:`~nextchar.tune.TuneResult`."""
    import optuna

    from ..exam.problems import PROBLEMS, build_problem_model
    from ..sequence.data import exam_data
    from ..sequence.many import fit_many
    from . import TuneResult, advance, open_tuning, progress_bar, write_figures
    from . import study as studies
    from .results import best_record

    if number not in PROBLEMS:
        raise ValueError(f"tune: --problem {number} is not one of the exam's problems {sorted(PROBLEMS)}")
    if batch < 1:
        raise ValueError(f"tune: --batch must be >= 1, got {batch}")
    problem, space = PROBLEMS[number], problem_space(params)
    epochs = epochs or problem.epochs
    name = study or f"nextchar-problem{number}"
    out, storage_url, the_study = open_tuning(out, trials, storage, name, sampler, seed, space,
                                              optuna.pruners.NopPruner(), METRIC)
    _, x, y = exam_data()
    bar = progress_bar(trials, progress)
    try:
        while (done := sum(studies.finished(t) for t in studies.counted(the_study.get_trials(deepcopy=False)))) \
                < trials:
            advance(bar, done)
            asked = [the_study.ask() for _ in range(min(batch, trials - done))]
            values = [suggest(trial, space) for trial in asked]
            models = [build_problem_model(problem, int(v.get("seed", problem.seed))) for v in values]
            started = time.perf_counter()
            results = fit_many(models, x, y, epochs=epochs, lrs=[float(v.get("lr", 0.1)) for v in values],
                               labels=[f"trial {t.number}" for t in asked], diverged="record")
            seconds = (time.perf_counter() - started) / len(asked)
            for trial, v, result in zip(asked, values, results):
                _tell(the_study, trial, v, result, seconds)
    finally:
        bar.close()
    records = studies.trial_records(the_study)
    best = best_record(records)
    if best is not None:
        import shlex

        best = {**best, "command": shlex.join(["nextchar", "sweep", "--problem", str(number), "--seeds",
                                               str(best["params"].get("seed", problem.seed)), "--lr",
                                               str(best["params"].get("lr", 0.1)), "--epochs", str(epochs)])}
    return TuneResult(name, storage_url, records, best, write_figures(the_study, records, out), METRIC)


def _tell(study, trial, values: dict, result, seconds: float) -> None:
    import optuna

    from ..sequence.fitting import DIVERGENCE

    trial.set_user_attr("flags", values)
    trial.set_user_attr("steps", len(result.history))
    trial.set_user_attr("seconds", round(seconds, 6))
    epoch = result.diverged_at()
    if epoch is not None:
        trial.set_user_attr("reason", "diverged")
        trial.set_user_attr("message", f"the loss became {DIVERGENCE} at epoch {epoch}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, result.final_loss)
