"""The ``nextchar`` command: each subcommand parses its flags and calls one library function.

``common.py`` holds what they share; ``exam.py`` the exam's commands (exam, verify, claims, bench);
``text.py`` training on any text (train, predict); ``generate.py`` sampling and beam search; ``inspect.py``
inside a model; ``export.py`` a model as a page or ONNX;
``sweep.py`` many models over a grid; ``tune.py`` an Optuna study over train runs.
"""
from __future__ import annotations

import click

from .exam import bench, claims, exam, verify
from .export import export
from .generate import generate
from .inspect import inspect
from .report import report
from .sweep import sweep
from .text import predict, train
from .tune import tune


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nextchar")
def main() -> None:
    """nextchar: next-character prediction with RNN, LSTM and GRU, from the exam to any text."""


for command in (exam, verify, claims, train, generate, predict, inspect, export, bench, sweep, tune, report):
    main.add_command(command)

if __name__ == "__main__":
    main()
