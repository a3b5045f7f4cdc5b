"""``nextchar sweep``: many models over seeds, learning rates, hidden sizes and families, in one command."""
from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import click

from ..cells import ALL_FAMILIES
from ..exam import sweep as defaults
from ..sequence.fitting import DIVERGENCE
from ..step import LOSSES
from .common import (
    check_device,
    claim_output_folder,
    clear_errors,
    ctrl_c_interrupts,
    end_distributed_run,
    leave_process_group,
    overwrite_option,
    prepare_outputs,
    report_option,
    results_json,
    set_threads,
    write_json_output,
    written_by,
)
from .report import write_report_option


def _list(kind, what: str, valid=lambda v: True, rule: str = ""):
    """A comma list (or repeated flag) of ``kind`` values, parsed with a message naming the flag; each value
    must pass ``valid`` (``rule`` says what that means)."""
    def parse(ctx, param, values):
        items = [v.strip() for value in values for v in value.split(",") if v.strip()]
        try:
            parsed = [kind(v) for v in items]
        except ValueError:
            raise click.BadParameter(f"expected a comma list of {what}, got {','.join(values)!r}") from None
        bad = [v for v in parsed if not valid(v)]
        if bad:
            raise click.BadParameter(f"{what} must be {rule}, got {bad[:5]}")
        return parsed or None
    return parse


@click.command()
@click.option("--seeds", default="32", show_default=True,
              help="A count N (seeds 0..N-1), a range A..B, or a comma list of these (e.g. 12345,0..63).")
@click.option("--lr", "lrs", multiple=True,
              callback=_list(float, "learning rates", lambda lr: math.isfinite(lr) and lr > 0, "finite and > 0"),
              help=f"Learning rates, comma list [default: {defaults.DEFAULT_LR:g}, the exam's].")
@click.option("--hidden-size", "hidden_sizes", multiple=True,
              callback=_list(int, "hidden sizes", lambda h: h >= 1, ">= 1"),
              help=f"Hidden sizes, comma list [default: {defaults.DEFAULT_HIDDEN_SIZE}].")
@click.option("--model", "models", multiple=True, callback=_list(str, "families"),
              help=f"Families, comma list of {', '.join(ALL_FAMILIES)} [default: {defaults.DEFAULT_MODEL}].")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help=f"Full-sequence epochs [default: the problem's, else {defaults.DEFAULT_EPOCHS}].")
@click.option("--loss", default="cross_entropy", show_default=True, type=click.Choice(LOSSES),
              help="cross_entropy, or mse between softmax outputs and one-hot targets (the stacked engine).")
@click.option("--problem", type=click.IntRange(1, 6), default=None,
              help="Take exam problem N's protocol: its model, sizes, epochs, lr and weight drawing.")
@click.option("--text-file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="A small UTF-8 text to sweep on instead of the exam's 'hi?hello!!'*100.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write every run as JSON.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Write one CSV row per run.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for the plots: accuracy and loss distributions, lr x hidden heatmap.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@report_option
@click.option("--device", default="cpu", show_default=True, callback=check_device,
              help="cpu runs the compiled many engine (cross-entropy); cuda (or --loss mse) the stacked torch engine.")
@overwrite_option
def sweep(seeds, lrs, hidden_sizes, models, epochs, loss, problem, text_file, json_path, csv_path, out,
          no_progress, report_path, device, overwrite) -> None:
    """Train a grid of models at once (seeds x --lr x --hidden-size x --model) and summarize the spread."""
    from ..distributed import Distributed

    set_threads(1)
    is_main = Distributed.from_env().is_main  # under torchrun only rank 0 reports and writes
    if is_main:
        prepare_outputs({"--json": json_path, "--csv": csv_path, "--report": report_path})
    with claim_output_folder(out if is_main else None, "sweep", "--out", overwrite, written_by("sweep_*.png")):
        _sweep(seeds, lrs, hidden_sizes, models, epochs, loss, problem, text_file, json_path, csv_path, out,
               no_progress, report_path, device, is_main)


def _sweep(seeds, lrs, hidden_sizes, models, epochs, loss, problem, text_file, json_path, csv_path, out,
           no_progress, report_path, device, is_main) -> None:
    """The sweep, its summary and its files (``sweep`` has checked and claimed the outputs)."""
    from tqdm.auto import tqdm

    from ..data import read_text_file
    from ..exam.sweep import model_epochs, parse_seeds
    from ..exam.sweep import sweep as run_sweep

    with clear_errors():
        seed_list = parse_seeds(seeds)
        text = read_text_file(text_file) if text_file else None
        total = model_epochs(seed_list, lrs=lrs, hidden_sizes=hidden_sizes, models=models, epochs=epochs,
                             problem=problem)
        bar = tqdm(total=total, disable=no_progress or not is_main, unit=" model-epochs", unit_scale=True)
        try:
            with ctrl_c_interrupts():  # the sweep keeps what finished on Ctrl-C
                result = run_sweep(seed_list, lrs=lrs, hidden_sizes=hidden_sizes, models=models, epochs=epochs,
                                   problem=problem, loss=loss, text=text, device=device, progress=bar.update)
        except BaseException:
            leave_process_group()
            raise
        finally:
            bar.close()
    if not is_main:
        end_distributed_run()
        return
    for line in describe(result):
        click.echo(line)
    with results_json(json_path, report_path) as json_path:
        write_json_output(json_path, result.to_json())
        write_report_option(json_path, report_path)
    if csv_path:
        with clear_errors():
            from ..outputs import write_text_atomic

            write_text_atomic(csv_path, runs_csv(result))
        click.echo(f"wrote {csv_path}")
    if out:
        with clear_errors():
            for path in save_plots(result, Path(out)):
                click.echo(f"figure: {path}")
    if result.interrupted:
        click.echo("stopped by Ctrl-C: wrote the runs that finished", err=True)
        sys.exit(130)
    end_distributed_run()


def describe(result) -> list[str]:
    lines = []
    for s in result.summary:
        q = s["loss_quantiles"]
        head = f"{s['model']} hidden {s['hidden_size']} lr {s['lr']:g}: {s['seeds']} seeds"
        if q is not None:
            lines.append(f"{head}, final loss median {s['loss_median']:.4g} [5% {q['0.05']:.4g}, 95% "
                         f"{q['0.95']:.4g}], mean accuracy {s['accuracy_mean']:.3f}, 100% accuracy in "
                         f"{s['solved_fraction']:.0%} of seeds")
        if s["diverged"]:
            epoch, seed = s["first_divergence"]
            lines.append(f"{head + ': ' if q is None else '  '}{s['diverged']} diverged (loss {DIVERGENCE}; first "
                         f"seed {seed} at epoch {epoch}); try a lower --lr")
        spread = s.get("table_spread")
        if spread and spread["reference_in_sweep"]:
            lines.append(f"  seed {spread['reference_seed']} (the problem's): {spread['reference_outside_5_95']} of "
                         f"the table's {len(spread['median']) * len(spread['median'][0])} entries lie outside the "
                         "seeds' 5%-95% range")
    lines.append(f"{len(result.runs)} runs, {result.engine} engine, {result.seconds:.1f} s"
                 + (" (stopped by Ctrl-C: the runs that finished)" if result.interrupted else ""))
    return lines


def runs_csv(result) -> str:
    buffer = io.StringIO()
    fields = ["problem", "model", "family", "hidden_size", "seed", "lr", "epochs", "loss", "final_loss", "accuracy",
              "diverged_at_epoch"]
    writer = csv.writer(buffer)
    writer.writerow(fields)
    for run in result.runs:
        writer.writerow(["" if getattr(run, f) is None else getattr(run, f) for f in fields])
    return buffer.getvalue()


def save_plots(result, out: Path) -> list[Path]:
    from ..plots import distributions, grid_heatmap, save

    label = lambda s: f"{s['model']} h{s['hidden_size']} lr {s['lr']:g}"  # noqa: E731
    groups = {}
    for s in result.summary:
        groups[label(s)] = [r for r in result.runs
                            if (r.model, r.hidden_size, r.lr) == (s["model"], s["hidden_size"], s["lr"])
                            and r.diverged_at_epoch is None]
    paths = [save(distributions({k: [r.accuracy for r in v] for k, v in groups.items()}, "final accuracy over seeds",
                                "accuracy"), out / "sweep_accuracy.png"),
             save(distributions({k: [r.final_loss for r in v] for k, v in groups.items()}, "final loss over seeds",
                                "loss (nats/char)"), out / "sweep_loss.png")]
    lrs = sorted({s["lr"] for s in result.summary})
    hiddens = sorted({s["hidden_size"] for s in result.summary})
    if len(lrs) > 1 and len(hiddens) > 1:
        for model in dict.fromkeys(s["model"] for s in result.summary):
            mean = {(s["hidden_size"], s["lr"]): s["accuracy_mean"] for s in result.summary
                    if s["model"] == model and s["accuracy_mean"] is not None}
            grid = [[mean.get((h, lr), float("nan")) for lr in lrs] for h in hiddens]
            paths.append(save(grid_heatmap(grid, hiddens, [f"{lr:g}" for lr in lrs], f"{model}: mean accuracy",
                                           "hidden size", "learning rate"), out / f"sweep_{model}_lr_hidden.png"))
    return paths
