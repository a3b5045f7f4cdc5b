"""``nextchar exam``'s output: the tables, the checks, the heatmaps and the JSON."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from ..device import resolve_device
from ..engines import engine_device
from ..exam.problems import PROBLEMS, ExamResult, ProblemResult, run_exam
from ..outputs import write_json
from ..plots import probability_heatmap, save
from ..run.checkpoint import save_checkpoint
from ..sequence.data import EXAM_MAPPING
from ..sequence.protocol import LR

FUSED_TOLERANCE = 1e-3
"""Max |Δp| allowed between the hand-written cell on the fused or compiled engine and the built-in cell
after the exam's training."""


def format_table(result: ProblemResult) -> str:
    """The first 10 rows of the fitted probabilities, 3 decimals, as numpy prints them."""
    with np.printoptions(suppress=True):
        return str(result.fit.probs[:10].numpy().round(3))


def describe(result: ProblemResult) -> str:
    p = result.problem
    if result.seed != p.seed:
        seed_note = f" (given with --seed; the exam's is {p.seed})" if p.exam_sets_seed else " (given with --seed)"
    else:
        seed_note = "" if p.exam_sets_seed else f" (the exam sets no seed; nextchar uses {p.seed}, its default)"
    engine = f", {result.engine} engine" if p.kind == "scratch" else ""
    lines = [f"== Problem {p.number}: {p.title} [{result.formulation}{engine}]",
             f"seed {result.seed}{seed_note}, {result.epochs} epochs, Adam lr {LR}, "
             f"{result.seconds:.1f} s", format_table(result), f"final loss {result.fit.final_loss:.6f}"]
    return "\n".join(lines)


def describe_checks(exam: ExamResult) -> list[str]:
    lines = []
    for name, check in exam.checks().items():
        mine, theirs = name.split("_vs_")
        same = "identical" if check["tables_identical"] else "DIFFERENT"
        lines.append(f"check problem {mine} vs {theirs} (seeds {check['seeds'][0]} vs {check['seeds'][1]}): "
                     f"max |Δp| = {check['max_abs_diff']:.3g}, bit-equal {check['bit_equal']}, tables {same}")
    return lines


def run_and_report(problems, seed, epochs, out, json_path, jobs, device, engine="autograd", command=None) -> bool:
    """Run, print, plot and write; True when every check with the exam's seeds passed."""
    numbers = problems or sorted(PROBLEMS)
    seeds = {n: seed for n in numbers} if seed is not None else None
    start = time.perf_counter()
    device = str(resolve_device(engine_device(engine, device)))
    from tqdm.auto import tqdm

    total = sum(epochs or PROBLEMS[n].epochs for n in numbers)
    with tqdm(total=total, unit=" epochs", disable=None, leave=False) as bar:  # shown on a terminal only
        exam = run_exam(numbers, seeds, epochs, device, jobs if device == "cpu" else 1, engine, progress=bar.update)
    labels = list(EXAM_MAPPING)
    for result in exam.results.values():
        click.echo(describe(result))
        title = f"Problem {result.problem.number}: {result.formulation}, seed {result.seed}"
        path = save(probability_heatmap(result.fit.probs, labels, title),
                    Path(out) / f"problem{result.problem.number}.png")
        click.echo(f"heatmap: {path}")
        checkpoint = save_checkpoint(Path(out) / f"problem{result.problem.number}.safetensors", result.checkpoint())
        click.echo(f"model: {checkpoint}\n")
    for line in describe_checks(exam):
        click.echo(line)
    click.echo(f"total {time.perf_counter() - start:.1f} s")
    if json_path:
        write_json(json_path, {**exam.to_json(), "engine": engine, "command": command or "nextchar exam"})
        click.echo(f"wrote {json_path}")
    exam_seeds = [c for c in exam.checks().values() if c["seeds"][0] == c["seeds"][1]]
    if engine != "autograd":  # compiled math rounds differently: equal to training noise, not bit for bit
        return all(c["max_abs_diff"] <= FUSED_TOLERANCE for c in exam_seeds)
    return all(c["tables_identical"] for c in exam_seeds)
