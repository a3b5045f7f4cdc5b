"""Training on any text and using what it made: ``train``, ``generate``, ``predict``."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from ..cells import NONLINEARITIES
from ..config import FORMULATIONS, SCHEDULES, TRAIN_MODEL_DEFAULTS, ModelConfig, TrainConfig, field_default
from ..corpora import CORPORA, CORPUS_BYTES
from ..engines import ENGINES, engine_device
from ..step import OPTIMIZERS, perplexity
from .common import (
    check_device,
    clear_errors,
    device_option,
    end_distributed_run,
    field_option,
    leave_process_group,
    one_text,
    prepare_outputs,
    refuse_overwriting_inputs,
    set_threads,
    text_options,
    threads_option,
)


def _duration(ctx, param, value: str | None) -> float | None:
    """--max-time's DURATION in seconds (a flag error when malformed)."""
    from ..run.time_budget import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error).removeprefix("train: --max-time ")) from None


@click.command()
@click.argument("text_file", required=False, type=click.Path(dir_okay=False))
@click.option("--corpus", type=click.Choice(CORPORA), default=None,
              help="Train on a built-in corpus instead of TEXT_FILE: tiny-shakespeare (fetched once into "
                   "$NEXTCHAR_DATA or the user cache folder), linux-kernel (the C sources of Debian's "
                   "linux-source-6.1) or python-stdlib (the standard library's source).")
@click.option("--corpus-bytes", default=CORPUS_BYTES, show_default=True, type=click.IntRange(min=1000),
              help="Characters of linux-kernel or python-stdlib to use (tiny-shakespeare is always whole).")
@click.option("--model", "formulation", default=field_default(ModelConfig, "family"), show_default=True,
              type=click.Choice(FORMULATIONS),
              help="Family and formulation: module (rnn/lstm/gru), loop over the built-in cell (-cell), "
                   "or the hand-written cell (-scratch).")
@field_option(ModelConfig, "engine", "--engine", type=click.Choice(ENGINES),
              help="For -scratch models: autograd (step by step) or fused (compiled forward and backward).")
@field_option(ModelConfig, "hidden_size", "--hidden-size", type=click.IntRange(min=1))
@field_option(ModelConfig, "num_layers", "--num-layers", type=click.IntRange(min=1))
@field_option(ModelConfig, "dropout", "--dropout", type=click.FloatRange(0.0, 1.0, max_open=True))
@field_option(ModelConfig, "nonlinearity", "--nonlinearity", type=click.Choice(NONLINEARITIES))
@click.option("--embedding-dim", default=TRAIN_MODEL_DEFAULTS["embedding_dim"], show_default=True,
              type=click.IntRange(min=0), help="Learned embedding of this size as input; 0 feeds one-hot vectors.")
@field_option(TrainConfig, "seq_len", "--seq-len", type=click.IntRange(min=1))
@field_option(TrainConfig, "batch_size", "--batch-size", type=click.IntRange(min=1))
@field_option(TrainConfig, "epochs", "--epochs", type=click.IntRange(min=1))
@field_option(TrainConfig, "max_steps", "--max-steps", type=click.IntRange(min=1))
@field_option(TrainConfig, "lr", "--lr", type=click.FloatRange(min=0, min_open=True))
@field_option(TrainConfig, "lr_schedule", "--lr-schedule", type=click.Choice(SCHEDULES))
@field_option(TrainConfig, "warmup_steps", "--warmup-steps", type=click.IntRange(min=0))
@field_option(TrainConfig, "min_lr", "--min-lr", type=click.FloatRange(min=0))
@field_option(TrainConfig, "lr_decay", "--lr-decay", type=click.FloatRange(0, 1, min_open=True))
@field_option(TrainConfig, "lr_decay_every", "--lr-decay-every", type=click.FloatRange(min=0, min_open=True))
@field_option(TrainConfig, "lr_decay_after", "--lr-decay-after", type=click.FloatRange(min=0))
@field_option(TrainConfig, "optimizer", "--optimizer", type=click.Choice(list(OPTIMIZERS)))
@field_option(TrainConfig, "weight_decay", "--weight-decay", type=click.FloatRange(min=0))
@field_option(TrainConfig, "clip", "--clip", type=click.FloatRange(min=0))
@field_option(TrainConfig, "val_fraction", "--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True))
@field_option(TrainConfig, "eval_every", "--eval-every", type=click.IntRange(min=1))
@field_option(TrainConfig, "seed", "--seed", type=click.IntRange(0, 2**64 - 1))
@click.option("--max-time", default=None, metavar="DURATION", callback=_duration,
              help="Wall-time budget of the whole run (seconds, or a number with s, m or h: 90s, 15m, 1h), evaluations "
                   "included and summed over resumes: training stops in time to evaluate and save within it, and "
                   "exits 0. Given alone (without --epochs or --max-steps) it trains until the budget, a cosine or "
                   "linear schedule laid over the steps the budget holds.")
@click.option("--out", default="runs/nextchar", show_default=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, history, loss curve.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint; flags left out take the checkpoint's.")
@click.option("--overwrite", is_flag=True, help="Replace the run that --out holds (its checkpoints and history).")
@click.option("--no-progress", is_flag=True, help="No progress bar (validation lines still print).")
@click.option("--tensorboard", is_flag=True,
              help="Also write the scalars as TensorBoard event files in --out/tensorboard "
                   "(pip install 'nextchar[tensorboard]').")
@field_option(TrainConfig, "device", "--device", callback=check_device)
@threads_option(None)
def train(text_file, corpus, corpus_bytes, formulation, engine, hidden_size, num_layers, dropout, nonlinearity,
          embedding_dim, seq_len, batch_size, epochs, max_steps, lr, lr_schedule, warmup_steps, min_lr, lr_decay,
          lr_decay_every, lr_decay_after, optimizer, weight_decay, clip, val_fraction, eval_every, seed, max_time, out,
          resume, overwrite, no_progress, tensorboard, device, threads) -> None:
    """Train a character model on TEXT_FILE (any UTF-8 text) or a built-in --corpus, into the run folder --out.

    A run folder holds one run: training into one that holds a run needs --resume (continue it exactly) or
    --overwrite (replace it). On --resume, flags that define the model or the data must match the checkpoint
    (--model, --engine, --hidden-size, --num-layers, --dropout, --nonlinearity, --embedding-dim, --seq-len,
    --batch-size, --val-fraction, --optimizer, --seed, and the text itself); --lr, the schedule's flags,
    --weight-decay, --clip, --epochs, --max-steps, --max-time, --eval-every and --device may change. Ctrl-C (or
    SIGTERM) saves last.safetensors at the current step and exits 130 (143) with the command that resumes.
    """
    from ..run.interrupt import TrainingInterrupted
    from ..run.trainer import train as run_train

    set_threads(threads)
    if (text_file is None) == (corpus is None):
        raise click.UsageError("give either TEXT_FILE or --corpus, not both or neither")
    model, config = train_configs(click.get_current_context().params)
    if resume:  # only what was given: the rest is the checkpoint's
        given = _given_flags()
        model = {k: v for k, v in model.items() if {"family": "formulation", "kind": "formulation"}.get(k, k) in given}
        config = {k: v for k, v in config.items() if k in given or (k == "device" and "engine" in given)}
    with clear_errors():
        text = read_train_text(click.get_current_context().params)
        try:
            result = run_train(text, model, config, out, resume=resume, progress=not no_progress, overwrite=overwrite,
                               tensorboard=tensorboard)
        except TrainingInterrupted as stopped:
            leave_process_group()
            click.echo(f"\n{stopped}. Resume with:\n  {_resume_command()}", err=True)
            sys.exit(stopped.exit_code)
        except BaseException:
            leave_process_group()
            raise
    from ..distributed import Distributed

    is_main = Distributed.from_env().is_main  # under torchrun only rank 0 reports
    if is_main and result.stopped_by_budget:
        click.echo(f"stopped by the --max-time budget ({result.seconds:.1f} s of {result.budget_seconds:g} s) at step "
                   f"{len(result.step_losses)}; --resume with a larger --max-time continues it")
    if is_main and result.evals and result.evals[-1]["val_loss"] is not None:
        click.echo(f"best val loss {result.best_val_loss:.4f} (perplexity {perplexity(result.best_val_loss):.3f}); "
                   f"run folder {out}")
    end_distributed_run()


def train_configs(params: dict) -> tuple[dict, dict]:
    """The model's and the training's settings from ``nextchar train``'s parsed flags (also ``tune``'s trials)."""
    from dataclasses import fields

    from ..config import parse_formulation

    family, kind = parse_formulation(params["formulation"])
    model = {"family": family, "kind": kind, "hidden_size": params["hidden_size"], "num_layers": params["num_layers"],
             "dropout": params["dropout"], "nonlinearity": params["nonlinearity"],
             "embedding_dim": params["embedding_dim"] or None, "engine": params["engine"]}
    # every TrainConfig field is a flag of the same name; clip and device are translated below
    config = {f.name: params[f.name] for f in fields(TrainConfig) if f.name not in ("clip", "device")}
    config.update(clip=params["clip"] or None, device=engine_device(params["engine"], params["device"]))
    return model, config


def read_train_text(params: dict) -> str:
    """The text ``nextchar train``'s flags name: TEXT_FILE or the built-in --corpus."""
    from ..corpora import load_corpus
    from ..data import check_train_text, read_text_file

    if params["text_file"]:
        path = Path(params["text_file"])
        if path.is_file():  # its size bounds its characters: refuse a text too big to encode before reading it
            check_train_text(path.stat().st_size, repr(str(path)))
        return read_text_file(path)
    return load_corpus(params["corpus"], params["corpus_bytes"])


def _given_flags() -> set[str]:
    """The parameters of this command set on the command line or from the environment, not by default."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}


def _resume_command() -> str:
    """This command line with --resume (and without --overwrite)."""
    args = [a for a in sys.argv[1:] if a not in ("--overwrite", "--resume")]
    return shlex.join(["nextchar", *args, "--resume"])


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@text_options("Text whose next-character probabilities to show.", 40, "the table and the heatmap")
@click.option("--top", default=3, show_default=True, type=click.IntRange(min=1), help="Guesses shown per position.")
@click.option("--png", default="predict.png", show_default=True, type=click.Path(dir_okay=False),
              help="Heatmap of the shown positions' probabilities (the exam's picture).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Every position's probabilities as JSON, streamed.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Every position's probabilities as CSV, streamed.")
@device_option
def predict(checkpoint, text, text_file, rows, offset, top, png, json_path, csv_path, device) -> None:
    """Next-character probabilities at each position of --text or --text-file: a table and a heatmap of
    --rows positions from --offset; --json/--csv hold every position. Memory stays bounded for any length."""
    from ..device import resolve_device
    from ..generate import format_predictions
    from ..plots import probability_heatmap, save
    from ..run.checkpoint import load_checkpoint
    from .predict_output import predict_to_files, read_pieces

    one_text(text, text_file)
    outputs = {"--png": png, "--json": json_path, "--csv": csv_path}
    refuse_overwriting_inputs(outputs, {"the checkpoint": checkpoint, "the --text-file": text_file})
    prepare_outputs(outputs)
    with clear_errors():
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.build_model(resolve_device(device))
        pieces = [text] if text is not None else read_pieces(text_file)
        shown, probs, total = predict_to_files(model, ckpt.vocab, pieces, rows, offset, json_path, csv_path)
    click.echo(format_predictions(ckpt.vocab, shown, probs, top, start=offset))
    last = offset + len(shown) - 1
    fig = probability_heatmap(probs, ckpt.vocab.chars, f"next-character probabilities, positions {offset}-{last} "
                              f"of {total}", rows=len(shown), row_labels=list(shown))
    with clear_errors():
        click.echo(f"heatmap: {save(fig, png)}")
    for path in (json_path, csv_path):
        if path:
            click.echo(f"wrote {path} ({total} positions)")


