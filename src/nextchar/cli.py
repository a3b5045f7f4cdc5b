"""The ``nextchar`` command: parses flags and calls one library function per subcommand."""
from __future__ import annotations

import math
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from .benchmark import WORKLOADS
from .cells import FAMILIES, NONLINEARITIES
from .config import FORMULATIONS, ModelConfig, TrainConfig, field_default, field_help
from .device import DEVICES
from .engines import ENGINES
from .training import OPTIMIZERS


def _threads(n: int | None) -> None:
    """torch's threads, and those of the BLAS that numba's np.dot loads later (the fused engine's);
    None keeps torch's default (all cores)."""
    import torch

    if n is None:
        return
    torch.set_num_threads(n)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))  # read when scipy's OpenBLAS first loads


def _field_option(cls: type, name: str, *decls: str, **kwargs):
    """A flag whose default and help come from the dataclass field ``cls.name``: declared once."""
    kwargs.setdefault("help", field_help(cls)[name])
    return click.option(*decls, default=field_default(cls, name), show_default=True, **kwargs)


def _write_json(path: str | None, payload: dict) -> None:
    from .outputs import write_json

    if path:
        with _clear_errors():
            write_json(path, payload)
        click.echo(f"wrote {path}")


def _prepare_outputs(files: dict[str, str | None] = {}, folders: dict[str, str | None] = {}) -> None:
    """Check every output path (and create its folder) before any work: {flag: path}."""
    from .outputs import prepare_dir, prepare_file

    with _clear_errors():
        for flag, path in files.items():
            prepare_file(path, flag)
        for flag, path in folders.items():
            if path is not None:
                prepare_dir(path, flag)


SEED = click.IntRange(0, 2**64 - 1)
"""torch.manual_seed's range."""


def _check_device(ctx, param, value: str) -> str:
    """Refuse an unknown device, or cuda without CUDA, as a flag error (the word itself is kept: auto stays auto)."""
    from .device import resolve_device

    try:
        resolve_device(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value


device_option = click.option("--device", default="auto", show_default=True, callback=_check_device,
                             help=f"Where to compute: one of {DEVICES} (or cuda:N); auto picks cuda when present.")


def threads_option(default: int | None):
    """--threads: 1 where measured fastest (exam-size models), torch's default (all cores) otherwise."""
    words = "torch's default (all cores)" if default is None else str(default)
    return click.option("--threads", default=default, type=click.IntRange(min=1),
                        help=f"torch CPU threads [default: {words}]; exam-size models run fastest on one, "
                             "hidden sizes in the hundreds on all cores.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nextchar")
def main() -> None:
    """nextchar: next-character prediction with RNN, LSTM and GRU, from the exam to any text."""


@main.command()
@click.option("--problem", "problems", multiple=True, type=click.IntRange(1, 6),
              help="Run only this problem (1-6); repeatable. Default: all six.")
@click.option("--seed", type=SEED, default=None,
              help="Override the seed of the selected problems (e.g. --problem 3 --seed 43052).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the exam's epoch counts.")
@click.option("--out", default="nextchar-exam", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the heatmap PNGs.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write results as JSON.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Problems run in parallel processes (one torch thread each); results do not depend on it.")
@_field_option(ModelConfig, "engine", "--engine", type=click.Choice(ENGINES),
               help="How problems 3 and 6 run the hand-written cell: autograd (the exam's step-by-step loop, "
                    "bit-equal to problems 2 and 5), fused (compiled kernels under autograd with torch's Adam) "
                    "or compiled (whole compiled epochs); fused and compiled equal autograd to round-off.")
@device_option
@threads_option(1)
def exam(problems, seed, epochs, out, json_path, jobs, engine, device, threads) -> None:
    """Reproduce the exam's problems 1-6 by its exact protocol, with exactness checks."""
    from .exam_report import run_and_report

    _threads(threads)
    _prepare_outputs({"--json": json_path}, {"--out": out})
    with _clear_errors():
        ok = run_and_report(list(problems) or None, seed, epochs, out, json_path, jobs, device, engine)
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--family", "families", multiple=True, type=click.Choice(FAMILIES),
              help="Family to verify; repeatable. Default: rnn, lstm and gru.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1),
              help="Training epochs before comparing fitted probabilities.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the shared initialisation.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the report as JSON.")
@device_option
@threads_option(1)
def verify(families, epochs, seed, json_path, device, threads) -> None:
    """Check that module, cell loop and hand-written cell agree on the same weights."""
    from .verify import verify as run_verify

    _threads(threads)
    _prepare_outputs({"--json": json_path})
    with _clear_errors():
        reports = run_verify(tuple(families) or FAMILIES, epochs=epochs, seed=seed, device=device)
    for report in reports:
        for kind, diffs in report.diffs.items():
            cells = "  ".join(f"{k} {v:.2e} (tol {report.tolerances[k]:.0e})" for k, v in diffs.items())
            click.echo(f"{report.family:4s} {kind:7s} vs module: {cells}")
        click.echo(f"{report.family:4s} {'PASS' if report.passed else 'FAIL'}")
    _write_json(json_path, {"families": [r.to_json() for r in reports], "epochs": epochs, "seed": seed})
    sys.exit(0 if all(r.passed for r in reports) else 1)


@main.command()
@click.option("--claim", "claims", multiple=True, type=click.IntRange(1, 5),
              help="Run only this claim (1-5); repeatable. Default: all five.")
@click.option("--quick", is_flag=True, help="A small budget (seconds); the default budget is the one reported.")
@click.option("--out", default="nextchar-claims", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the figures.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write results as JSON.")
@device_option
@threads_option(1)
def claims(claims, quick, out, json_path, device, threads) -> None:
    """Run the exam's five true/false claims as experiments and print each verdict with its evidence."""
    from .claims import run_claim
    from .plots import save

    _threads(threads)
    _prepare_outputs({"--json": json_path}, {"--out": out})
    results = {}
    for number in sorted(claims) or range(1, 6):
        with _clear_errors():
            result = run_claim(number, "quick" if quick else "full", device)
        results[str(number)] = result.to_json()
        click.echo(f"== Claim {number}: {result.statement}")
        click.echo(f"verdict: {'TRUE' if result.verdict else 'FALSE'}")
        click.echo(f"evidence: {result.explanation}")
        for name, fig in result.figures.items():
            with _clear_errors():
                click.echo(f"figure: {save(fig, Path(out) / f'claim{number}_{name}.png')}")
        click.echo()
    _write_json(json_path, {"claims": results})


@main.command()
@click.argument("text_file", required=False, type=click.Path(dir_okay=False))
@click.option("--corpus", type=click.Choice(["python-stdlib"]), default=None,
              help="Train on a built-in corpus instead of TEXT_FILE: python-stdlib is the standard library's source.")
@click.option("--corpus-bytes", default=1_000_000, show_default=True, type=click.IntRange(min=1000),
              help="Characters of the built-in corpus to use.")
@click.option("--model", "formulation", default=field_default(ModelConfig, "family"), show_default=True,
              type=click.Choice(FORMULATIONS),
              help="Family and formulation: module (rnn/lstm/gru), loop over the built-in cell (-cell), "
                   "or the hand-written cell (-scratch).")
@_field_option(ModelConfig, "engine", "--engine", type=click.Choice(ENGINES[:-1]),
               help="For -scratch models: autograd (step by step) or fused (compiled forward and backward).")
@_field_option(ModelConfig, "hidden_size", "--hidden-size", type=click.IntRange(min=1))
@_field_option(ModelConfig, "num_layers", "--num-layers", type=click.IntRange(min=1))
@_field_option(ModelConfig, "dropout", "--dropout", type=click.FloatRange(0.0, 1.0, max_open=True))
@_field_option(ModelConfig, "nonlinearity", "--nonlinearity", type=click.Choice(NONLINEARITIES))
@_field_option(ModelConfig, "embedding_dim", "--embedding-dim", type=click.IntRange(min=0))
@_field_option(TrainConfig, "seq_len", "--seq-len", type=click.IntRange(min=1))
@_field_option(TrainConfig, "batch_size", "--batch-size", type=click.IntRange(min=1))
@_field_option(TrainConfig, "epochs", "--epochs", type=click.IntRange(min=1))
@_field_option(TrainConfig, "max_steps", "--max-steps", type=click.IntRange(min=1))
@_field_option(TrainConfig, "lr", "--lr", type=click.FloatRange(min=0, min_open=True))
@_field_option(TrainConfig, "optimizer", "--optimizer", type=click.Choice(list(OPTIMIZERS)))
@_field_option(TrainConfig, "clip", "--clip", type=click.FloatRange(min=0))
@_field_option(TrainConfig, "val_fraction", "--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True))
@_field_option(TrainConfig, "eval_every", "--eval-every", type=click.IntRange(min=1))
@_field_option(TrainConfig, "seed", "--seed", type=click.IntRange(0, 2**64 - 1))
@click.option("--out", default="runs/nextchar", show_default=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, history, loss curve.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint; flags left out take the checkpoint's.")
@click.option("--overwrite", is_flag=True, help="Replace the run that --out holds (its checkpoints and history).")
@click.option("--no-progress", is_flag=True, help="No progress bar (validation lines still print).")
@_field_option(TrainConfig, "device", "--device", callback=_check_device)
@threads_option(None)
def train(text_file, corpus, corpus_bytes, formulation, engine, hidden_size, num_layers, dropout, nonlinearity,
          embedding_dim, seq_len, batch_size, epochs, max_steps, lr, optimizer, clip, val_fraction, eval_every,
          seed, out, resume, overwrite, no_progress, device, threads) -> None:
    """Train a character model on TEXT_FILE (any UTF-8 text) or a built-in --corpus, into the run folder --out.

    A run folder holds one run: training into one that holds a run needs --resume (continue it exactly) or
    --overwrite (replace it). On --resume, flags that define the model or the data must match the checkpoint
    (--model, --engine, --hidden-size, --num-layers, --dropout, --nonlinearity, --embedding-dim, --seq-len,
    --batch-size, --val-fraction, --optimizer, --seed, and the text itself); --lr, --clip, --epochs,
    --max-steps, --eval-every and --device may change. Ctrl-C (or SIGTERM) saves last.safetensors at the
    current step and exits 130 (143) with the command that resumes.
    """
    from .config import parse_formulation
    from .data import load_corpus, read_text_file
    from .interrupt import TrainingInterrupted
    from .trainer import train as run_train

    _threads(threads)
    if (text_file is None) == (corpus is None):
        raise click.UsageError("give either TEXT_FILE or --corpus, not both or neither")
    family, kind = parse_formulation(formulation)
    model = {"family": family, "kind": kind, "hidden_size": hidden_size, "num_layers": num_layers,
             "dropout": dropout, "nonlinearity": nonlinearity, "embedding_dim": embedding_dim or None, "engine": engine}
    if engine == "fused" and device == "auto":
        device = "cpu"  # the fused engine's kernels run on the CPU
    config = {"seq_len": seq_len, "batch_size": batch_size, "epochs": epochs, "max_steps": max_steps, "lr": lr,
              "optimizer": optimizer, "clip": clip or None, "val_fraction": val_fraction, "eval_every": eval_every,
              "seed": seed, "device": device}
    if resume:  # only what was given: the rest is the checkpoint's
        given = _given_flags()
        model = {k: v for k, v in model.items() if {"family": "formulation", "kind": "formulation"}.get(k, k) in given}
        config = {k: v for k, v in config.items() if k in given or (k == "device" and "engine" in given)}
    with _clear_errors():
        text = read_text_file(text_file) if text_file else load_corpus(corpus, corpus_bytes)
        try:
            result = run_train(text, model, config, out, resume=resume, progress=not no_progress, overwrite=overwrite)
        except TrainingInterrupted as stopped:
            click.echo(f"\n{stopped}. Resume with:\n  {_resume_command()}", err=True)
            sys.exit(stopped.exit_code)
        finally:
            _leave_process_group()
    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    if is_main and result.evals and result.evals[-1]["val_loss"] is not None:
        click.echo(f"best val loss {result.best_val_loss:.4f} (perplexity {math.exp(result.best_val_loss):.3f}); "
                   f"run folder {out}")


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


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--prompt", default="\\n", show_default=True, help="Text to warm up on; \\n stands for a newline.")
@click.option("--length", default=500, show_default=True, type=click.IntRange(min=0), help="Characters to generate.")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Softmax temperature: lower is more conservative.")
@click.option("--top-k", default=None, type=click.IntRange(min=1), help="Sample only among the k most likely.")
@click.option("--greedy", is_flag=True, help="Always take the most likely character.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Sampling seed.")
@device_option
@threads_option(1)
def generate(checkpoint, prompt, length, temperature, top_k, greedy, seed, device, threads) -> None:
    """Generate text from a checkpoint: warm up on --prompt, then sample one character at a time."""
    from .checkpoint import load_checkpoint
    from .device import resolve_device
    from .generate import generate as run_generate

    _threads(threads)
    with _clear_errors():
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.build_model(resolve_device(device))
        text = run_generate(model, ckpt.vocab, prompt.replace("\\n", "\n"), length, temperature, top_k, greedy, seed)
    click.echo(text)


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--text", default=None, help="Text whose next-character probabilities to show.")
@click.option("--text-file", default=None, help="Read the text from this UTF-8 file (- for stdin), any length.")
@click.option("--rows", default=40, show_default=True, type=click.IntRange(min=1),
              help="Positions shown in the table and the heatmap.")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0),
              help="First position shown in the table and the heatmap.")
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
    from .checkpoint import load_checkpoint
    from .device import resolve_device
    from .generate import format_predictions
    from .plots import probability_heatmap, save
    from .predict_output import predict_to_files, read_pieces

    if (text is None) == (text_file is None):
        raise click.UsageError("give either --text or --text-file, not both or neither")
    _prepare_outputs({"--png": png, "--json": json_path, "--csv": csv_path})
    with _clear_errors():
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.build_model(resolve_device(device))
        pieces = [text] if text is not None else read_pieces(text_file)
        shown, probs, total = predict_to_files(model, ckpt.vocab, pieces, rows, offset, json_path, csv_path)
    click.echo(format_predictions(ckpt.vocab, shown, probs, top, start=offset))
    last = offset + len(shown) - 1
    fig = probability_heatmap(probs, ckpt.vocab.chars, f"next-character probabilities, positions {offset}-{last} "
                              f"of {total}", rows=len(shown), row_labels=list(shown))
    with _clear_errors():
        click.echo(f"heatmap: {save(fig, png)}")
    for path in (json_path, csv_path):
        if path:
            click.echo(f"wrote {path} ({total} positions)")


@main.command()
@click.option("--quick", is_flag=True, help="A small budget that finishes in about a minute.")
@click.option("--family", "families", multiple=True, type=click.Choice(FAMILIES),
              help="Family to time; repeatable. Default: rnn, lstm and gru.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help='Write {"records": [...]} with one record per (workload, family, engine).')
@click.option("--workload", "workloads", multiple=True, type=click.Choice(WORKLOADS),
              help="Workload to time; repeatable. Default: exam and both stream workloads.")
@click.option("--no-compile-timing", is_flag=True, help="Skip timing the kernels' cold and warm first calls.")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="torch CPU threads for every workload [default: 1 for the exam, torch's default for the streams].")
def bench(quick, families, json_path, workloads, no_compile_timing, threads) -> None:
    """Time every engine side by side (ms per epoch) and report each one's ratio to torch's module."""
    from .benchmark import format_table, run_bench, write_json

    _prepare_outputs({"--json": json_path})
    with _clear_errors():
        result = run_bench(quick, tuple(families) or FAMILIES, threads, tuple(workloads) or WORKLOADS[:-1],
                           not no_compile_timing, log=lambda line: click.echo(line, err=True))
    click.echo(format_table(result))
    if json_path:
        with _clear_errors():
            write_json(result, json_path)
        click.echo(f"wrote {json_path}")


def _leave_process_group() -> None:
    """Under torchrun, leave the process group train() joined, so every rank exits cleanly."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def _clear_errors():
    """Library errors (bad input, checkpoints, non-finite loss) end the command with their message."""
    from .outputs import OutputError
    from .training import NonFiniteLossError

    try:
        yield
    except (ValueError, NonFiniteLossError, OutputError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # anything else the OS refuses: name the file
        where = f" {error.filename!r}" if error.filename else ""
        raise click.ClickException(f"cannot use{where}: {error.strerror or error}") from None


if __name__ == "__main__":
    main()
