"""Where nextchar writes: every output path is checked (and its folder created) before any work, and
every file is written atomically (a temp file in the same folder, fsync, rename), so a crash, a kill
or a full disk never leaves a half-written file behind. OS errors become one-line
:class:`OutputError` messages that name the path.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
