"""The ``nextchar`` command: parses flags and calls one library function per subcommand."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cells import FAMILIES
from .device import DEVICES


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2))
        click.echo(f"wrote {path}")


device_option = click.option("--device", default="cpu", show_default=True,
                             help=f"Where to compute: one of {DEVICES} (or cuda:N); auto picks cuda when present.")
threads_option = click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
                              help="torch CPU threads; small models run fastest on one.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nextchar")
def main() -> None:
    """nextchar: next-character prediction with RNN, LSTM and GRU, from the exam to any text."""


@main.command()
@click.option("--problem", "problems", multiple=True, type=click.IntRange(1, 6),
              help="Run only this problem (1-6); repeatable. Default: all six.")
@click.option("--seed", type=int, default=None,
              help="Override the seed of the selected problems (e.g. --problem 3 --seed 43052).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the exam's epoch counts.")
@click.option("--out", default="nextchar-exam", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the heatmap PNGs.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write results as JSON.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Problems run in parallel processes (one torch thread each); results do not depend on it.")
@device_option
@threads_option
def exam(problems, seed, epochs, out, json_path, jobs, device, threads) -> None:
    """Reproduce the exam's problems 1-6 by its exact protocol, with exactness checks."""
    from .exam_report import run_and_report

    _threads(threads)
    ok = run_and_report(list(problems) or None, seed, epochs, out, json_path, jobs, device)
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--family", "families", multiple=True, type=click.Choice(FAMILIES),
              help="Family to verify; repeatable. Default: rnn, lstm and gru.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1),
              help="Training epochs before comparing fitted probabilities.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the shared initialisation.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the report as JSON.")
@device_option
@threads_option
def verify(families, epochs, seed, json_path, device, threads) -> None:
    """Check that module, cell loop and hand-written cell agree on the same weights."""
    from .verify import verify as run_verify

    _threads(threads)
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
@threads_option
def claims(claims, quick, out, json_path, threads) -> None:
    """Run the exam's five true/false claims as experiments and print each verdict with its evidence."""
    from .claims import run_claim
    from .plots import save

    _threads(threads)
    results = {}
    for number in sorted(claims) or range(1, 6):
        result = run_claim(number, "quick" if quick else "full")
        results[str(number)] = result.to_json()
        click.echo(f"== Claim {number}: {result.statement}")
        click.echo(f"verdict: {'TRUE' if result.verdict else 'FALSE'}")
        click.echo(f"evidence: {result.explanation}")
        for name, fig in result.figures.items():
            click.echo(f"figure: {save(fig, Path(out) / f'claim{number}_{name}.png')}")
        click.echo()
    _write_json(json_path, {"claims": results})


if __name__ == "__main__":
    main()
