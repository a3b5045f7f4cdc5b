"""What ``nextchar report`` reads: each input is recognised from its content, not its name.

JSON files written by ``exam --json``, ``verify --json``, ``claims --json``, ``sweep --json``,
``bench --json``, ``inspect --json`` and ``tune --json``, and ``train`` run folders. Anything else is a clear
error naming the input.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("exam", "verify", "claims", "sweep", "bench", "run", "inspect", "tune")
MAX_INPUT_BYTES = 512 << 20
"""The largest JSON input read (a sweep of a million runs is about 400 MB)."""


class ReportInputError(ValueError):
    """An input that nextchar did not write."""


@dataclass
class ReportInput:
    kind: str
    """One of KINDS."""
    source: str
    """The path it came from."""
    data: Any
    """The parsed JSON, or for a run folder the folder's Path."""
    live: bool = False
    """For a run folder: embed the export's page of its best checkpoint (``report --live``)."""


def kind_of(data: Any) -> str | None:
    """The kind of a parsed JSON document, or None."""
    if not isinstance(data, dict):
        return None
    if data.get("kind") in ("inspect", "tune"):
        return data["kind"]
    if isinstance(data.get("problems"), dict) and "checks" in data:
        return "exam"
    if isinstance(data.get("families"), list) and all(isinstance(f, dict) and "diffs" in f for f in data["families"]):
        return "verify"
    if isinstance(data.get("claims"), dict):
        return "claims"
    if isinstance(data.get("runs"), list) and isinstance(data.get("summary"), list):
        return "sweep"
    if isinstance(data.get("records"), list) and all(isinstance(r, dict) and "engine" in r for r in data["records"]):
        return "bench"
    return None


def recognize(path: str | Path) -> ReportInput:
    """The input at ``path``, its kind recognised and its fields checked against the kind's schema."""
    from .schema import SCHEMAS, SchemaError, conform

    path = Path(path)
    expected = ("expected the JSON of exam, verify, claims, sweep, bench, inspect or tune (--json), or a train run "
                "folder (with last.safetensors or history.json)")
    if path.is_dir():
        if (path / "last.safetensors").is_file() or (path / "history.json").is_file():
            return ReportInput("run", str(path), path)
        if (path / "study.db").is_file() or any(path.glob("trial-[0-9]*")):
            raise ReportInputError(f"report: {str(path)!r} is a nextchar tune folder; report takes the study's JSON "
                                   "(rerun the same nextchar tune command with --json FILE: it finishes at once and "
                                   f"writes it) or one trial's run folder ({str(path / 'trial-0000')!r})")
        raise ReportInputError(f"report: {str(path)!r} is a folder but not a run folder; {expected}")
    if not path.exists():
        raise ReportInputError(f"report: {str(path)!r} does not exist")
    if not path.is_file() and str(path) != "/dev/stdin":  # a FIFO would block until a writer came
        raise ReportInputError(f"report: {str(path)!r} is not a regular file; give a JSON file, a run folder, or "
                               "/dev/stdin to read a pipe")
    try:  # a file, or a pipe such as /dev/stdin
        text = path.read_bytes()[:MAX_INPUT_BYTES + 1]
    except OSError as error:
        raise ReportInputError(f"report: {str(path)!r} cannot be read: {error.strerror or error}") from None
    if len(text) > MAX_INPUT_BYTES:
        raise ReportInputError(f"report: {str(path)!r} is larger than {MAX_INPUT_BYTES >> 20} MB; nextchar writes no "
                               "such JSON")
    try:
        data = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ReportInputError(f"report: {str(path)!r} is not JSON; {expected}") from None
    except RecursionError:
        raise ReportInputError(f"report: {str(path)!r} is JSON nested too deeply to be nextchar's") from None
    kind = kind_of(data)
    if kind is None:
        raise ReportInputError(f"report: {str(path)!r} is JSON but not something nextchar wrote; {expected}")
    try:
        data = conform(data, SCHEMAS[kind])
    except SchemaError as error:
        raise ReportInputError(f"report: {str(path)!r} looks like {kind} JSON, but its {error}") from None
    return ReportInput(kind, str(path), data)
