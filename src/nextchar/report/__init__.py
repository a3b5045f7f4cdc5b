"""``nextchar report``: one self-contained HTML page of everything nextchar measured.

Inputs are what nextchar writes (``inputs.py`` recognises each from its content); each kind has a
section (``sections.py``) rendered by one Jinja2 template (``page.html.j2``). Figures are inline PNGs
from the same plotting code the commands use, the CSS is inline: the page loads nothing.
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from .inputs import KINDS, ReportInput, ReportInputError, recognize

HEADINGS = {"exam": "The exam", "verify": "Formulations agree (verify)", "claims": "The true/false claims",
            "sweep": "Sweep", "bench": "Performance (bench)", "run": "Training run",
            "inspect": "Inside the model (inspect)", "tune": "Tuning study (tune)"}


def _meta() -> dict:
    import torch

    from .. import __version__

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return {"version": __version__, "torch": torch.__version__, "device": device,
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def render(items: Sequence[ReportInput]) -> str:
    """The page for ``items``, in order; sections appear only for the inputs given."""
    import jinja2

    from .environment import environment
    from .sections import SECTIONS

    env = environment("report")
    sections, meta, template = [], _meta(), env.get_template("page.html.j2")
    for index, item in enumerate(items):
        command = item.data.get("command") if isinstance(item.data, dict) else None
        section = {"id": f"{item.kind}-{index}", "kind": item.kind, "heading": HEADINGS[item.kind],
                   "source": item.source, "command": command}
        try:  # the schema caught what it names; anything else odd in an input still ends as one line
            section["data"] = SECTIONS[item.kind](item)
            template.render(meta=meta, sections=[section])
        except ReportInputError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
                jinja2.TemplateError) as error:
            raise ReportInputError(f"report: {item.source!r} ({item.kind}) cannot be shown: "
                                   f"{type(error).__name__}: {str(error)[:120]}") from None
        sections.append(section)
    return template.render(meta=meta, sections=sections)


def build_report(inputs: Sequence[str | Path], out: str | Path, live: bool = False) -> Path:
    """Recognise each input, render the page and write it atomically to ``out``; ``live``: each run folder
    gets a "try it" panel, the export's page of its best checkpoint."""
    import dataclasses

    from ..outputs import write_text_atomic

    items = [dataclasses.replace(recognize(path), live=live) for path in inputs]
    if not items:
        raise ReportInputError("report: no inputs")
    return write_text_atomic(out, render(items))


__all__ = ["KINDS", "ReportInput", "ReportInputError", "build_report", "recognize", "render"]
