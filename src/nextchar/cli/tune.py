"""``nextchar tune``: an Optuna study over ``nextchar train`` runs (every other train flag passes through)."""
from __future__ import annotations

import signal
import sys

import click

from ..tune import PRUNERS, SAMPLERS
from .common import (
    claim_output_folder,
    clear_errors,
    command_line,
    ctrl_c_interrupts,
    overwrite_option,
    prepare_outputs,
)

OWN = {"out", "resume", "overwrite", "tensorboard", "max-steps", "eval-every", "no-progress", "threads"}
"""Train flags tune sets per trial itself."""


def _train_context(source: list[str], extra: list[str], max_steps: int, eval_every: int):
    """``nextchar train``'s own parsing of the study's fixed flags (its errors, its defaults)."""
    from .text import train

    for arg in extra:
        name = arg.lstrip("-").split("=")[0]
        if arg.startswith("--") and name in OWN:
            raise click.UsageError(f"--{name} is set by tune for each trial (use tune's --max-steps, --eval-every, "
                                   "--out, --no-progress)")
    return train.make_context("nextchar train", [*source, *extra, "--max-steps", str(max_steps),
                                                 "--eval-every", str(eval_every), "--no-progress"])


def _fixed_flags(ctx) -> set[str]:
    """The train flags given on the command line (their dimensions leave the space)."""
    from click.core import ParameterSource

    flags = set()
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE and param.opts[0].startswith("--"):
            flags.add(param.opts[0][2:])
    return flags - OWN - {"corpus", "corpus-bytes"}


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("text_file", required=False, type=click.Path(dir_okay=False))
@click.option("--corpus", default=None,
              help="A built-in corpus instead of TEXT_FILE: tiny-shakespeare, linux-kernel or python-stdlib.")
@click.option("--corpus-bytes", default=None, type=click.IntRange(min=1000), help="Characters of the corpus to use.")
@click.option("--problem", default=None, type=click.IntRange(1, 6),
              help="An exam-size study of this exam problem instead of a text: batches of trials, each batch one "
                   "call of the many engine (dimensions lr and seed).")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="With --problem: epochs per trial.  [default: the problem's]")
@click.option("--batch", default=256, show_default=True, type=click.IntRange(min=1),
              help="With --problem: trials asked of the sampler at once, trained together.")
@click.option("--trials", default=20, show_default=True, type=click.IntRange(min=1),
              help="Finished trials the study should hold (all workers together).")
@click.option("--out", default="runs/tune", show_default=True, type=click.Path(file_okay=False),
              help="The study's folder: a run folder per trial (trial-NNNN), study.db, the figures.")
@click.option("--param", "params", multiple=True, metavar="NAME=SPEC",
              help="A dimension: lr=log:1e-4:1e-2, hidden-size=int:64:512:64, model=choice:lstm,gru,rnn, "
                   "dropout=float:0:0.5 (repeatable; replaces the default's dimension of that name).")
@click.option("--max-steps", default=500, show_default=True, type=click.IntRange(min=1), help="Steps per trial.")
@click.option("--eval-every", default=100, show_default=True, type=click.IntRange(min=1),
              help="Steps between evaluations: the pruning interval.")
@click.option("--timeout", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Seconds for the whole study (no trial starts after).")
@click.option("--sampler", default="tpe", show_default=True, type=click.Choice(SAMPLERS))
@click.option("--pruner", default="median", show_default=True, type=click.Choice(PRUNERS))
@click.option("--seed", "sampler_seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="The sampler's seed (each trial's training seed is train's --seed).")
@click.option("--storage", default=None,
              help="Optuna storage URL (sqlite:///..., postgresql://..., mysql://...) or journal:PATH.  "
                   "[default: sqlite:///OUT/study.db]")
@click.option("--study", "study_name", default="nextchar", show_default=True, help="The study's name in the storage.")
@click.option("--heartbeat", default=30, show_default=True, type=click.IntRange(min=1),
              help="Seconds between a running trial's heartbeats; silent for twice this, it is retried.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the results as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bar over trials.")
@overwrite_option
@click.pass_context
def tune(ctx, text_file, corpus, corpus_bytes, problem, epochs, batch, trials, out, params, max_steps, eval_every,
         timeout, sampler, pruner, sampler_seed, storage, study_name, heartbeat, json_path, no_progress,
         overwrite) -> None:
    """Search training configurations of nextchar train with Optuna: a default space (--lr, --hidden-size,
    --num-layers, --dropout, --model) or --param NAME=SPEC; every other train flag is fixed for the study.
    Each trial is a run folder; the study lives in a database, so several workers share it and a rerun
    resumes it (a dead worker's trial resumes from its own folder)."""
    from ..run.interrupt import TrainingInterrupted
    from ..tune import tune as run_tune
    from .text import read_train_text, train_configs

    if problem is not None:
        if text_file or corpus or ctx.args:
            raise click.UsageError("--problem studies the exam's protocol: drop TEXT_FILE, --corpus and train's flags")
        from ..tune.problems import tune_problem

        prepare_outputs({"--json": json_path})
        with _claim(out, overwrite), clear_errors():
            result = tune_problem(problem, trials, out, params=params, epochs=epochs, batch=batch, sampler=sampler,
                                  seed=sampler_seed, storage=storage,
                                  study=None if study_name == "nextchar" else study_name, progress=not no_progress)
        _results(result, json_path)
        return
    if (text_file is None) == (corpus is None):
        raise click.UsageError("give either TEXT_FILE or --corpus, not both or neither (or --problem N)")
    source = [text_file] if text_file else ["--corpus", corpus, *(["--corpus-bytes", str(corpus_bytes)]
                                                                  if corpus_bytes else [])]
    train_ctx = _train_context(source, list(ctx.args), max_steps, eval_every)
    prepare_outputs({"--json": json_path})
    with _claim(out, overwrite), clear_errors():
        model, config = train_configs(train_ctx.params)
        text = read_train_text(train_ctx.params)
        try:
            with ctrl_c_interrupts():
                result = run_tune(text, trials, out, model=model, config=config, params=params,
                                  fixed=_fixed_flags(train_ctx), max_steps=max_steps, eval_every=eval_every,
                                  sampler=sampler, pruner=pruner, seed=sampler_seed, storage=storage,
                                  study=study_name, timeout=timeout, heartbeat=heartbeat,
                                  train_args=[*source, *ctx.args], progress=not no_progress)
        except KeyboardInterrupt:
            _interrupted(signal.SIGINT)
        except TrainingInterrupted as stopped:  # the trainer saved the interrupted trial first
            _interrupted(stopped.signum)
    _results(result, json_path)


def _claim(out: str, overwrite: bool):
    """The study's folder: new, empty, or a study's (marked, or holding study.db from before marks)."""
    return claim_output_folder(out, "tune", "--out", overwrite, ours=lambda path: (path / "study.db").is_file())


def _results(result, json_path: str | None) -> None:
    """The leaderboard (the best twenty), the best and its command, the figures, the JSON."""
    from ..tune.results import leaderboard

    click.echo(leaderboard(result.trials, top=20))
    if len(result.trials) > 20:
        click.echo(f"... {len(result.trials) - 20} more trials (all in --json)")
    if result.best:
        click.echo(f"\nbest: trial {result.best['number']}, {result.metric} {result.best['value']:.4g}\n"
                   f"  {result.best['command']}")
    for name, path in result.figures.items():
        click.echo(f"{name}: {path}")
    if json_path:
        from ..outputs import write_json

        with clear_errors():
            write_json(json_path, result.to_json(command_line()))
        click.echo(f"wrote {json_path}")


def _interrupted(signum: int) -> None:
    """Name what stopped the study (a scheduler's SIGTERM is not a Ctrl-C) and exit with its code."""
    what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    click.echo(f"\nstopped by {what}; rerun the same command to resume the study (the interrupted trial resumes "
               "from its folder)", err=True)
    sys.exit(128 + signum)
