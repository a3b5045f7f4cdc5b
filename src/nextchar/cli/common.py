"""What the nextchar commands share: output checks, clear errors, threads, and flags built from the configs."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..config import field_default, field_help
from ..device import DEVICES


def set_threads(n: int | None) -> None:
    """torch's threads, and those of the BLAS that numba's np.dot loads later (the fused engine's);
    None keeps torch's default (all cores)."""
    import torch

    if n is None:
        return
    torch.set_num_threads(n)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))  # read when scipy's OpenBLAS first loads


def field_option(cls: type, name: str, *decls: str, **kwargs):
    """A flag whose default and help come from the dataclass field ``cls.name``: declared once."""
    kwargs.setdefault("help", field_help(cls)[name])
    return click.option(*decls, default=field_default(cls, name), show_default=True, **kwargs)


def command_line() -> str:
    """This command with the flags given to it (recorded in the JSON, shown by nextchar report), rebuilt
    from click's context so it is right however the command was invoked."""
    import shlex

    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return shlex.join(["nextchar", *sys.argv[1:]])
    parts, arguments = ["nextchar", ctx.info_name], []
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        value = ctx.params[param.name]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(param, click.Argument):
            arguments += [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            parts.append(param.opts[0])
        else:
            for v in values:
                parts += [max(param.opts, key=len), str(v)]
    return shlex.join(parts + arguments)


def write_json_output(path: str | None, payload: dict) -> None:
    from ..outputs import write_json

    payload = {**payload, "command": command_line()}
    if path:
        with clear_errors():
            write_json(path, payload)
        click.echo(f"wrote {path}")


def prepare_outputs(files: dict[str, str | None], folders: dict[str, str | None] | None = None) -> None:
    """Check every output path (and create its folder) before any work: {flag: path}."""
    from ..outputs import prepare_dir, prepare_file

    with clear_errors():
        for flag, path in files.items():
            prepare_file(path, flag)
        for flag, path in (folders or {}).items():
            if path is not None:
                prepare_dir(path, flag)


overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="Write into an --out folder, or over a default file, that holds what nextchar did not write there.")


def claim_output_folder(path: str | None, command: str, flag: str, overwrite: bool, ours=None):
    """The folder ``command`` writes (``outputs.claim_folder``), as a context manager that removes it again
    if the command fails and it is still empty; a null context for no folder."""
    from contextlib import nullcontext

    from ..outputs import claim_folder

    if path is None:
        return nullcontext()
    with clear_errors():
        return claim_folder(path, command, flag, overwrite, ours)


def written_by(*patterns: str):
    """Knows a folder a command wrote before folders were marked: every file in it (hidden ones aside) has a
    name the command gives its files (``patterns``, globs), or is a JSON the user asked for beside them."""
    from fnmatch import fnmatch

    def recognise(path: Path) -> bool:
        return all(any(fnmatch(entry.name, p) for p in (*patterns, "*.json"))
                   for entry in path.iterdir() if not entry.name.startswith("."))
    return recognise


def check_default_output(param_name: str, path: str, flag: str, overwrite: bool) -> None:
    """A file the user did not name (``flag`` left at its default) replaces only a page nextchar wrote."""
    from click.core import ParameterSource

    from ..outputs import check_default_file

    if click.get_current_context().get_parameter_source(param_name) == ParameterSource.DEFAULT:
        with clear_errors():
            check_default_file(path, flag, overwrite)


def refuse_overwriting_inputs(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """An output path that names an input (the checkpoint, the text) or another output is refused before any
    work: it would be replaced silently."""
    seen: dict[Path, str] = {Path(path).resolve(): what for what, path in inputs.items() if path and path != "-"}
    for flag, path in outputs.items():
        if not path:
            continue
        where = Path(path).resolve()
        if where in seen:
            raise click.UsageError(f"{flag} {path!r} is {seen[where]}; it would be replaced: choose another path")
        seen[where] = f"also the {flag} output"


SEED = click.IntRange(0, 2**64 - 1)
"""torch.manual_seed's range."""


def check_device(ctx, param, value: str) -> str:
    """Refuse an unknown device, or cuda without CUDA, as a flag error (the word itself is kept: auto stays auto)."""
    from ..device import resolve_device

    try:
        resolve_device(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value


device_option = click.option("--device", default="auto", show_default=True, callback=check_device,
                             help=f"Where to compute: one of {DEVICES} (or cuda:N); auto picks cuda when present.")


def text_options(what: str, rows: int, shown: str):
    """--text / --text-file (any length, - for stdin) and the shown window --rows / --offset, for predict and
    inspect; pair with :func:`one_text`."""
    options = [
        click.option("--text", default=None, help=what),
        click.option("--text-file", default=None, help="Read the text from this UTF-8 file (- for stdin), any length."),
        click.option("--rows", default=rows, show_default=True, type=click.IntRange(min=1),
                     help=f"Positions shown in {shown}."),
        click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0),
                     help=f"First position shown in {shown}."),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


def one_text(text: str | None, text_file: str | None) -> None:
    if (text is None) == (text_file is None):
        raise click.UsageError("give either --text or --text-file, not both or neither")


def threads_option(default: int | None):
    """--threads: 1 where measured fastest (exam-size models), torch's default (all cores) otherwise."""
    words = "torch's default (all cores)" if default is None else str(default)
    return click.option("--threads", default=default, type=click.IntRange(min=1),
                        help=f"torch CPU threads [default: {words}]; exam-size models run fastest on one, "
                             "hidden sizes in the hundreds on all cores.")


def leave_process_group() -> None:
    """Under torchrun, leave the process group (after an error: the other ranks stop too)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def end_distributed_run() -> None:
    """Under torchrun, after the work is written: wait for every rank, then end this one without the
    interpreter's teardown. Tearing down with gloo's threads alive aborted rank 1 now and then ("terminate
    called without an active exception") after every file had been written; os._exit skips that teardown."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@contextmanager
def ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt inside, even where the shell started us with SIGINT ignored (as it
    starts background jobs), so the commands that keep partial work on Ctrl-C always get the chance."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def clear_errors():
    """Library errors (bad input, checkpoints, non-finite loss) end the command with their message."""
    from ..outputs import OutputError
    from ..step import NonFiniteLossError

    try:
        yield
    except (ValueError, NonFiniteLossError, OutputError) as error:
        raise click.ClickException(str(error)) from None
    except MemoryError:
        raise click.ClickException("out of memory: this run needs more memory than the machine has; give it "
                                   "a smaller model, fewer models or epochs, or a shorter text") from None
    except OSError as error:  # anything else the OS refuses: name the file
        where = f" {error.filename!r}" if error.filename else ""
        raise click.ClickException(f"cannot use{where}: {error.strerror or error}") from None


report_option = click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False),
                             help="Also write the page of these results (as nextchar report would).")


@contextmanager
def results_json(json_path: str | None, report_path: str | None, folder: str | None = None) -> Iterator[str | None]:
    """The JSON path to write: the one asked for, or, when only --report wants it, a temporary file that is
    removed once the page is built (the page holds everything it shows). ``folder``: where that temporary
    file goes (claims': its figures' folder, since a JSON may only name figures inside its own folder)."""
    if json_path or not report_path:
        yield json_path
        return
    import tempfile

    handle, path = tempfile.mkstemp(prefix=".nextchar-", suffix=".json", dir=folder)
    os.close(handle)
    try:
        yield path
    finally:
        Path(path).unlink(missing_ok=True)
