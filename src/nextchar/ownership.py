"""What a command may write over: nothing a user owns is replaced without ``--overwrite``.

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
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .outputs import OutputError, prepare_dir, write_json

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
