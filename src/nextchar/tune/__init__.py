"""``nextchar tune``: search training configurations with Optuna, every trial a nextchar run folder.

``space.py`` holds the search space (dimensions named by train's flags), ``study.py`` the study in its
storage and the trials (run folders, pruning, retries of dead trials from their own folder),
``results.py`` the leaderboard, the JSON and the figures, ``problems.py`` exam-size studies (a batch of
trials as one call of the many engine). :func:`tune` is the Python API.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .space import DEFAULT_SPACE, Dimension, apply, build_space

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "asha", "hyperband", "none")


@dataclass
class TuneResult:
    study: str
    storage: str
    trials: list[dict]
    """Per trial: number, state, params (train flags), value (best validation loss), steps, seconds, folder."""
    best: dict | None
    """The best complete trial, with ``command``: the ``nextchar train`` that trains its configuration."""
    figures: dict[str, Path]
    metric: str = "val_loss"
    """What the trials minimise: the best validation loss of a run (``final_loss`` for exam studies)."""

    def to_json(self, command: str | None = None) -> dict:
        from .study import DIRECTION

        return {"kind": "tune", "study": self.study, "storage": self.storage, "direction": DIRECTION,
                "metric": self.metric, "trials": self.trials, "best": self.best,
                "figures": {name: path.name for name, path in self.figures.items()}, "command": command}


def make_sampler(name: str, seed: int, space: dict[str, Dimension]):
    import optuna

    if name == "grid":
        from .space import grid_values

        return optuna.samplers.GridSampler(grid_values(space), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed) if name == "random" else optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, eval_every: int, max_steps: int):
    import optuna

    return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
            "asha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=max_steps),
            "none": optuna.pruners.NopPruner}[name]()


def tune(text: str, trials: int, out: str | Path, *, model: dict | None = None, config: dict | None = None,
         params: Sequence[str] = (), fixed: Sequence[str] = (), max_steps: int = 500, eval_every: int = 100,
         sampler: str = "tpe", pruner: str = "median", seed: int = 0, storage: str | None = None,
         study: str = "nextchar", timeout: float | None = None, heartbeat: int | None = None,
         train_args: Sequence[str] = ("TEXT_FILE",), progress: bool = True,
         on_progress: Callable[[int], None] | None = None) -> TuneResult:
    """Run (or join, or resume) the study ``study`` until it holds ``trials`` finished trials.

    ``model`` / ``config``: the settings fixed for every trial (train's), ``fixed``: the train flags they
    came from (their default dimensions go); ``params``: ``NAME=SPEC`` dimensions replacing or adding to
    the default space. Each trial trains ``max_steps`` steps into ``out/trial-NNNN``, evaluated (and
    pruned) every ``eval_every``. ``train_args``: the train arguments of the study, for the best's command.
    """
    from . import study as studies
    from .results import best_record, train_command

    if pruner not in PRUNERS:
        raise ValueError(f"tune: --pruner must be one of {PRUNERS}, got {pruner!r}")
    fixed_model, fixed_config = dict(model or {}), {**(config or {}), "max_steps": max_steps, "eval_every": eval_every}
    space = build_space(list(params), set(fixed), fixed_model, fixed_config)
    out, storage_url, the_study = open_tuning(out, trials, storage, study, sampler, seed, space,
                                              make_pruner(pruner, eval_every, max_steps), studies.METRIC, heartbeat)
    runner = studies.TrialRunner(out, space, _train_run(text, fixed_model, fixed_config), trials, max_steps)
    bar = progress_bar(trials, progress)
    try:
        studies.run_workers(the_study, runner, trials, timeout, on_progress or (lambda done: advance(bar, done)))
    finally:
        bar.close()
    records = studies.trial_records(the_study)
    best = best_record(records)
    if best is not None:
        flags = [a for k, v in best["params"].items() for a in (f"--{k}", str(v))]
        best = {**best, "command": train_command([*train_args, *flags, "--max-steps", str(max_steps),
                                                  "--eval-every", str(eval_every)])}
    return TuneResult(study, storage_url, records, best, write_figures(the_study, records, out))


def open_tuning(out: str | Path, trials: int, storage: str | None, name: str, sampler: str, seed: int,
                space: dict[str, Dimension], pruner, metric: str, heartbeat: int | None = None):
    """What every study starts with: the checks, ``out``, the storage (default ``out/study.db``) and the
    study, its sampler seeded by the study's size at start (a rerun does not redraw the trials it has).
    Returns (out, storage URL, study)."""
    import warnings

    import optuna

    from . import study as studies

    if trials < 1:
        raise ValueError(f"tune: --trials must be >= 1, got {trials}")
    if sampler not in SAMPLERS:
        raise ValueError(f"tune: --sampler must be one of {SAMPLERS}, got {sampler!r}")
    if storage:
        studies.refuse_in_memory(storage)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage_url = storage or studies.default_storage(out)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial shows in the leaderboard, with its reason
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat's helpers
    opened = studies.open_storage(storage_url, heartbeat or studies.HEARTBEAT)
    the_study = studies.open_study(name, opened, None, pruner, metric=metric,
                                   space={n: d.spec() for n, d in space.items()}, url=storage_url)
    the_study.sampler = make_sampler(sampler, seed + len(the_study.trials), space)
    return out, storage_url, the_study


def _train_run(text: str, model: dict, config: dict):
    """A trial's training: nextchar train's trainer into the trial's folder, with the trial's flags."""
    from ..run.trainer import train

    def run(values: dict, folder: Path, resume: bool, on_eval):
        trial_model, trial_config = apply(values, model, config)
        return train(text, trial_model, trial_config, folder, resume=resume, progress=False, on_eval=on_eval)
    return run


def progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="trial", dynamic_ncols=True)


def advance(bar, done: int) -> None:
    """The bar at ``done`` finished trials (they may finish in any worker)."""
    bar.n = min(done, bar.total)
    bar.refresh()


def write_figures(study, records: list[dict], out: Path) -> dict[str, Path]:
    """history.png, parameters.png and importances.png in ``out`` (importances from 2 complete trials)."""
    import optuna

    from ..plots import save
    from .results import history_figure, importances_figure, parameters_figure

    figures = {"history": save(history_figure(records), out / "history.png"),
               "parameters": save(parameters_figure(records), out / "parameters.png")}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
        try:
            importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):  # e.g. parameters that vary in no complete trial
            importances = {}
        if importances:
            figures["importances"] = save(importances_figure(importances), out / "importances.png")
    return figures


__all__ = ["DEFAULT_SPACE", "PRUNERS", "SAMPLERS", "Dimension", "TuneResult", "tune"]
