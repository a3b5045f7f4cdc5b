"""``nextchar report``: one self-contained HTML page of what nextchar measured."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from .common import check_default_output, clear_errors, overwrite_option, prepare_outputs, set_threads


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True))
@click.option("--out", default="nextchar-report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The page to write (one file; opens offline).")
@click.option("--live", is_flag=True,
              help="Give each run folder a \"try it\" panel: its best checkpoint running in the page "
                   "(nextchar export).")
@overwrite_option
def report(inputs, out, live, overwrite) -> None:
    """Build one page from INPUTS: the JSON of exam, verify, claims, sweep or bench (--json) and train run
    folders, each recognised from its content. With no INPUTS, runs the exam and verify first."""
    set_threads(1)
    check_default_output("out", out, "--out", overwrite)
    prepare_outputs({"--out": out})
    with clear_errors():
        if inputs:
            _build(inputs, out, live)
            return
        with tempfile.TemporaryDirectory(prefix="nextchar-report-") as folder:  # the page holds what it shows
            _build(_run_exam_and_verify(Path(folder)), out)


def _build(inputs, out: str, live: bool = False) -> None:
    """Build the page; what it leaves out of an input (a figure outside the JSON's folder, ...) is a warning."""
    import warnings

    from ..report import build_report
    from ..report.sections import ReportWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        path = build_report(inputs, out, live)
    for warning in caught:
        if issubclass(warning.category, ReportWarning):
            click.echo(f"warning: {warning.message}", err=True)
    click.echo(f"report: {path}")


def _run_exam_and_verify(folder: Path) -> list[str]:
    """The default page: a fresh exam and verify, their JSON in ``folder``."""
    from ..exam.verify import EPOCHS, SEED, verify, verify_json
    from ..outputs import write_json
    from .exam_output import run_and_report

    exam_path, verify_path = folder / "exam.json", folder / "verify.json"
    run_and_report(None, None, None, folder / "exam", str(exam_path), 2, "cpu")
    payload = verify_json(verify(epochs=EPOCHS, seed=SEED), EPOCHS, SEED)
    write_json(verify_path, {**payload, "command": "nextchar verify"})
    return [str(exam_path), str(verify_path)]


def write_report_option(json_payload_path: str, report_path: str | None) -> None:
    """``--report FILE`` of exam, claims and sweep: the page from the JSON the command just wrote."""
    if report_path:
        with clear_errors():
            _build([json_payload_path], report_path)
