"""The exam's commands: ``exam``, ``verify``, ``claims``, and ``bench`` (engines side by side)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..benchmark import WORKLOADS
from ..cells import ALL_FAMILIES, FAMILIES
from ..config import ModelConfig
from ..engines import EXAM_ENGINES
from ..exam.verify import EPOCHS as VERIFY_EPOCHS
from ..exam.verify import SEED as VERIFY_SEED
from .common import (
    SEED,
    check_device,
    claim_output_folder,
    clear_errors,
    command_line,
    device_option,
    field_option,
    overwrite_option,
    prepare_outputs,
    report_option,
    results_json,
    set_threads,
    threads_option,
    write_json_output,
    written_by,
)
from .report import write_report_option


@click.command()
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
@field_option(ModelConfig, "engine", "--engine", type=click.Choice(EXAM_ENGINES),
              help="How problems 3 and 6 run the hand-written cell: autograd (the exam's step-by-step loop, "
                   "bit-equal to problems 2 and 5), fused (compiled kernels under autograd with torch's Adam) "
                   "or compiled (whole compiled epochs); fused and compiled equal autograd to round-off.")
@device_option
@threads_option(1)
@report_option
@overwrite_option
def exam(problems, seed, epochs, out, json_path, jobs, engine, device, threads, report_path, overwrite) -> None:
    """Reproduce the exam's problems 1-6 by its exact protocol, with exactness checks."""
    from .exam_output import run_and_report

    set_threads(threads)
    prepare_outputs({"--json": json_path, "--report": report_path})
    with claim_output_folder(out, "exam", "--out", overwrite, written_by("problem[1-6].*")), \
            results_json(json_path, report_path) as json_path:
        with clear_errors():
            ok = run_and_report(list(problems) or None, seed, epochs, out, json_path, jobs, device, engine,
                                command_line())
        write_report_option(json_path, report_path)
    sys.exit(0 if ok else 1)


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(ALL_FAMILIES),
              help="Family to verify; repeatable. Default: every one (rnn, lstm, gru, mingru, minlstm).")
@click.option("--epochs", default=VERIFY_EPOCHS, show_default=True, type=click.IntRange(min=1),
              help="Training epochs before comparing fitted probabilities.")
@click.option("--seed", default=VERIFY_SEED, show_default=True, type=SEED, help="Seed of the shared initialisation.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the report as JSON.")
@device_option
@threads_option(1)
def verify(families, epochs, seed, json_path, device, threads) -> None:
    """Check that module, cell loop and hand-written cell agree on the same weights."""
    from ..exam.verify import verify as run_verify
    from ..exam.verify import verify_json

    set_threads(threads)
    prepare_outputs({"--json": json_path})
    with clear_errors():
        reports = run_verify(tuple(families) or ALL_FAMILIES, epochs=epochs, seed=seed, device=device)
    for report in reports:
        for kind, diffs in report.diffs.items():
            cells = "  ".join(f"{k} {v:.2e} (tol {report.tolerances[k]:.0e})" for k, v in diffs.items())
            click.echo(f"{report.family:7s} {kind:7s} vs module: {cells}")
        click.echo(f"{report.family:7s} {'PASS' if report.passed else 'FAIL'}")
    write_json_output(json_path, verify_json(reports, epochs, seed))
    sys.exit(0 if all(r.passed for r in reports) else 1)


@click.command()
@click.option("--claim", "claims", multiple=True, type=click.IntRange(1, 5),
              help="Run only this claim (1-5); repeatable. Default: all five.")
@click.option("--quick", is_flag=True, help="A small budget (seconds); the default budget is the one reported.")
@click.option("--out", default="nextchar-claims", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the figures.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write results as JSON.")
@device_option
@threads_option(1)
@report_option
@overwrite_option
def claims(claims, quick, out, json_path, device, threads, report_path, overwrite) -> None:
    """Run the exam's five true/false claims as experiments and print each verdict with its evidence."""
    from ..exam.claims import run_claim
    from ..plots import save

    set_threads(threads)
    prepare_outputs({"--json": json_path, "--report": report_path})
    with claim_output_folder(out, "claims", "--out", overwrite, written_by("claim[1-5]_*.png")), \
            results_json(json_path, report_path, folder=out) as json_path:
        results = {}
        for number in sorted(claims) or range(1, 6):
            with clear_errors():
                result = run_claim(number, "quick" if quick else "full", device)
            results[str(number)] = result.to_json()
            click.echo(f"== Claim {number}: {result.statement}")
            click.echo(f"verdict: {'TRUE' if result.verdict else 'FALSE'}")
            click.echo(f"evidence: {result.explanation}")
            results[str(number)]["figures"] = {}
            for name, fig in result.figures.items():
                with clear_errors():
                    path = save(fig, Path(out) / f"claim{number}_{name}.png")
                # relative to the JSON: a report reads figures only from inside the JSON's own folder
                results[str(number)]["figures"][name] = os.path.relpath(path.resolve(),
                                                                        Path(json_path or ".").resolve().parent)
                click.echo(f"figure: {path}")
                if json_path and results[str(number)]["figures"][name].startswith(".."):
                    click.echo(f"warning: {path} is outside the folder of {json_path}; nextchar report shows only "
                               "figures inside a JSON's own folder", err=True)
            click.echo()
        write_json_output(json_path, {"claims": results})
        write_report_option(json_path, report_path)


@click.command()
@click.option("--quick", is_flag=True, help="A small budget that finishes in about a minute.")
@click.option("--family", "families", multiple=True, type=click.Choice(FAMILIES),
              help="Family to time; repeatable. Default: rnn, lstm and gru.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help='Write {"records": [...]} with one record per (workload, family, engine).')
@click.option("--workload", "workloads", multiple=True, type=click.Choice(WORKLOADS),
              help="Workload to time; repeatable. Default: all but streams-tiny (exam-many: the many engine, "
                   "K models; minimal-*: mingru/minlstm's scan vs their step loop vs nn.GRU and nn.LSTM).")
@click.option("--no-compile-timing", is_flag=True, help="Skip timing the kernels' cold and warm first calls.")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="torch CPU threads for every workload [default: 1 for the exam, torch's default for the streams].")
@click.option("--device", default="cpu", show_default=True, callback=check_device,
              help="cuda times the GPU rows: the torch contenders, and exam-many on the stacked engine.")
def bench(quick, families, json_path, workloads, no_compile_timing, threads, device) -> None:
    """Time every engine side by side (ms per epoch) and report each one's ratio to torch's module."""
    from ..benchmark import format_table, run_bench

    prepare_outputs({"--json": json_path})
    with clear_errors():
        result = run_bench(quick, tuple(families) or FAMILIES, threads, tuple(workloads) or WORKLOADS[:-1],
                           not no_compile_timing, log=lambda line: click.echo(line, err=True), device=device)
    click.echo(format_table(result))
    write_json_output(json_path, result)


