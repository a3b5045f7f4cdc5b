"""Where nextchar writes: every output path is checked (and its folder created) before any work, and
every file is written atomically (a temp file in the same folder, fsync, rename), so a crash, a kill
or a full disk never leaves a half-written file behind. OS errors become one-line
:class:`OutputError` messages that name the path.

What a command may write over: nothing a user owns is replaced without ``--overwrite``.

A command that writes a folder (``tune --out``, ``inspect --lstmvis``, the figure folders of ``exam``,
``claims`` and ``sweep``) claims it first: a new or empty folder, or one the same command wrote before (it
leaves :data:`OWNER_FILE` there), is taken; any other folder that holds files is refused, naming them and
the flag that allows it. If the command then fails, a folder it created and left empty is removed again.
A command that writes a file the user did not name (``inspect.html``, ``nextchar-report.html``) replaces
only a page nextchar wrote. ``train --out`` keeps its own rule (``run/folder.py``): it writes only the
run's files, and refuses a folder that holds a run.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class OutputError(OSError):
    """An output path that cannot be written; its message names the path."""

    def __str__(self) -> str:
        return str(self.args[0])


def _describe(error: OSError) -> str:
    return error.strerror or str(error)


def prepare_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents) and check that files can be created in it."""
    if str(path) == "":
        raise OutputError(f"{what}: the path is empty; give a folder name")
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nextchar-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"{what}: cannot write to {str(path)!r}: {_describe(error)}") from None
    return path


def prepare_file(path: str | Path | None, what: str = "output file") -> Path | None:
    """Check, before any work, that the file ``path`` can be written: its folder is created and must
    accept new files; an existing folder in its place is refused. None passes through."""
    if path is None:
        return None
    if str(path) == "":
        raise OutputError(f"{what}: the path is empty; give a file name")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what}: {str(path)!r} is a folder; give a file name")
    prepare_dir(path.parent if str(path.parent) else ".", f"{what} {str(path)!r}")
    return path


def _creation_mode() -> int:
    """What a plain open() would give a new file: 0o666 less the umask (mkstemp's files are 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically; the old file (if any) stays whole until the rename."""
    with atomic_file(path, "wb") as handle:
        handle.write(payload)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | Path, payload: Any, indent: int | None = 2) -> Path:
    """Standard JSON only: a NaN or infinity is a bug to surface, not a file other tools cannot read."""
    return write_text_atomic(path, json.dumps(payload, indent=indent, allow_nan=False))


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A handle (``mode`` "w" for UTF-8 text, "wb" for bytes) on a temp file beside ``path``, fsynced and
    renamed onto ``path`` at the end, removed if anything fails: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"cannot write {str(path)!r}: {_describe(error)}") from None
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _creation_mode())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, OutputError):
            raise OutputError(f"cannot write {str(path)!r}: {_describe(error)}") from error
        raise


OWNER_FILE = ".nextchar-output"
"""A command's mark in a folder it writes: ``{"command": "tune"}``; the command may write there again."""
PAGE_MARKS = (b'<meta name="generator" content="nextchar">', b"<title>nextchar report</title>")
"""How a page nextchar wrote starts (the second: pages from before the generator mark)."""
SHOWN = 4
"""Files named in a refusal; the rest are counted."""


@dataclass
class FolderClaim:
    """A folder a command writes into. As a context manager: on an exception, a folder the claim created
    and that holds nothing but the mark is removed (no empty target is left behind)."""

    path: Path
    created: bool

    def __enter__(self) -> FolderClaim:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None and self.created and not _contents(self.path):
            shutil.rmtree(self.path, ignore_errors=True)


def claim_folder(path: str | Path, command: str, flag: str, overwrite: bool = False,
                 ours: Callable[[Path], bool] | None = None) -> FolderClaim:
    """Take the folder ``path`` for ``command`` (named in the mark), before any work. ``ours(path)``
    recognises a folder the command wrote before the mark existed. ``flag`` names the path in errors."""
    if str(path) == "":
        raise OutputError(f"{flag}: the path is empty; give a folder name")
    path = Path(path)
    created = not path.exists()
    if not created and not path.is_dir():
        raise OutputError(f"{flag} {str(path)!r} is a file; give a folder")
    present = [] if created else _contents(path)
    if present and not overwrite and _owner(path) != command and not (ours and ours(path)):
        names = ", ".join(present[:SHOWN]) + (f" and {len(present) - SHOWN} more" if len(present) > SHOWN else "")
        raise OutputError(f"{flag} {str(path)!r} already holds files that nextchar {command} did not write ({names}); "
                          "give a new or empty folder, or add --overwrite to write into it anyway")
    prepare_dir(path, flag)
    claim = FolderClaim(path, created)
    with claim:
        write_json(path / OWNER_FILE, {"command": command})
    return claim


def check_default_file(path: str | Path, flag: str, overwrite: bool = False) -> None:
    """A file written where the user named no path (``flag``'s default) may replace only a page nextchar
    wrote; anything else there is refused before any work."""
    path = Path(path)
    if overwrite or not path.exists() or (path.is_file() and page_is_ours(path)):
        return
    raise OutputError(f"{str(path)!r} exists and is not a page nextchar wrote; give {flag} PATH to write "
                      "elsewhere, or add --overwrite to replace it")


def page_is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(2048)
    except OSError:
        return False
    return any(mark in head for mark in PAGE_MARKS)


def _contents(path: Path) -> list[str]:
    """The folder's entries without the mark (nor a mark another worker is writing this moment), hidden ones
    last (a missing folder has none)."""
    try:
        return sorted((entry.name for entry in path.iterdir()
                       if entry.name != OWNER_FILE and not entry.name.startswith(f".{OWNER_FILE}.")),
                      key=lambda name: (name.startswith("."), name))
    except OSError:
        return []


def _owner(path: Path) -> str | None:
    try:
        return json.loads((path / OWNER_FILE).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None
