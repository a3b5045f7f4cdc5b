"""A run folder belongs to one run: ``nextchar train`` claims it, locks it, and never overwrites it silently.

- A folder that already holds a run (any of :data:`RUN_FILES`) is refused unless the run is resumed
  (``--resume``) or replaced on purpose (``--overwrite``, which moves the old run aside and deletes it
  only once the new run's first checkpoint is saved; a new run that fails before puts it back).
- A run that saves nothing leaves no trace: no empty folder, no lone ``.lock``.
- An OS-level lock (``fcntl.flock`` on ``.lock``) is held for the whole run; a second process gets a clear
  error naming the folder and the holder's PID. The lock dies with its process, even after SIGKILL, so
  there is no stale lock to clean up.
- Temp files left by a write that SIGKILL cut short are removed when the next run claims the folder.
- ``history.json`` is a view of the history kept inside each checkpoint: it is written atomically after
  the checkpoint, and on resume it is rebuilt from the checkpoint, so the two never disagree.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import shutil
from pathlib import Path

from ..outputs import prepare_dir, write_json, write_text_atomic

RUN_FILES = ("last.safetensors", "best.safetensors", "history.json", "history.csv", "loss.png", "tensorboard")
LOCK_NAME = ".lock"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``run_dir/.lock``; the file holds the owner's PID."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.handle: io.TextIOWrapper | None = None

    def acquire(self) -> RunLock:
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderError(f"run folder {str(self.path.parent)!r} is in use by another nextchar train "
                                 f"(PID {holder}); wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.handle is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def run_files(run_dir: Path) -> list[str]:
    """The run files present in ``run_dir``."""
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


ASIDE = ".replaced"
"""Where --overwrite keeps the old run until the new one's first checkpoint is saved."""


class RunClaim:
    """A claimed run folder: its lock, and the old run that --overwrite set aside until :meth:`saved`."""

    def __init__(self, run_dir: Path, lock: RunLock, created: bool) -> None:
        self.run_dir, self.lock, self.created = run_dir, lock, created

    @property
    def aside(self) -> Path:
        return self.run_dir / ASIDE

    def saved(self) -> None:
        """The new run's first checkpoint is written: the old run it replaces can go."""
        if self.aside.exists():
            shutil.rmtree(self.aside)

    def release(self) -> None:
        """End the claim. A run that saved nothing leaves the folder as it found it: the old run put back
        (--overwrite), and no empty folder or lone .lock where there was none."""
        try:
            if self.aside.exists():
                _restore(self.run_dir)
            if not run_files(self.run_dir):
                (self.run_dir / LOCK_NAME).unlink(missing_ok=True)
                if self.created and not any(self.run_dir.iterdir()):
                    self.run_dir.rmdir()
        finally:
            self.lock.release()


def _restore(run_dir: Path) -> None:
    """Put the old run set aside by --overwrite back, in place of whatever the new one left before its first save."""
    for name in run_files(run_dir):
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in (run_dir / ASIDE).iterdir():
        path.rename(run_dir / path.name)
    (run_dir / ASIDE).rmdir()


def claim(run_dir: str | Path, resume: bool, overwrite: bool) -> RunClaim:
    """Create and lock ``run_dir`` for one run; refuse a folder holding another run unless resumed or
    overwritten. Returns the claim (release it when the run ends, or let the process end)."""
    if resume and overwrite:
        raise RunFolderError("train: --resume continues the run in --out, --overwrite replaces it: give one")
    created = not Path(run_dir).exists()
    run_dir = prepare_dir(run_dir, "train --out")
    held = RunClaim(run_dir, RunLock(run_dir).acquire(), created)
    try:
        for stale in run_dir.glob(".*.tmp"):  # a write cut by SIGKILL; no one else writes here while we hold the lock
            stale.unlink(missing_ok=True)
        if held.aside.exists():  # an --overwrite killed before (restore) or after (drop) its first save
            held.saved() if (run_dir / "last.safetensors").is_file() else _restore(run_dir)
        present = run_files(run_dir)
        if resume and not (run_dir / "last.safetensors").is_file():
            raise RunFolderError(f"train: nothing to resume in {str(run_dir)!r}: it has no last.safetensors")
        if present and not resume:
            if not overwrite:
                raise RunFolderError(
                    f"train: {str(run_dir)!r} already holds a run ({', '.join(present)}); use --resume to continue "
                    "it, --overwrite to replace it, or another --out")
            held.aside.mkdir()
            for name in present:  # kept until the new run's first checkpoint, restored if it never comes
                (run_dir / name).rename(held.aside / name)
    except BaseException:
        held.release()
        raise
    return held


# ---- the history: evaluations and every step's loss ----

def write_history(run_dir: Path, evals: list[dict], step_losses: list[float]) -> None:
    """history.json and history.csv, each written atomically (standard JSON: no NaN)."""
    write_json(run_dir / "history.json", {"evals": evals, "step_losses": step_losses}, indent=None)
    if evals:
        buffer = io.StringIO()
        # every key of every record: a resumed older run's first records lack the fields added since
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for e in evals for key in e)))
        writer.writeheader()
        writer.writerows(evals)
        write_text_atomic(run_dir / "history.csv", buffer.getvalue())


def read_history(run_dir: str | Path) -> dict:
    """history.json as ``{'evals': [...], 'step_losses': [...]}``; a broken one names its file and the fix."""
    path = Path(run_dir) / "history.json"
    fix = "it is rebuilt from last.safetensors by the next `nextchar train ... --resume` in that folder"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"history: {str(path)!r} does not exist") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise RunFolderError(f"history: {str(path)!r} is not valid JSON ({str(error)[:80]}); {fix}") from None
    if not (isinstance(data, dict) and isinstance(data.get("evals"), list)
            and isinstance(data.get("step_losses"), list)):
        raise RunFolderError(f"history: {str(path)!r} lacks 'evals' and 'step_losses' lists; {fix}")
    return data
