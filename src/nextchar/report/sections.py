"""Each input kind -> the data its section of the page shows; figures come from ``plots.py`` as inline PNGs."""
from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from ..plots import distributions, loss_curves, probability_heatmap
from ..sequence.data import EXAM_MAPPING
from .images import data_uri
from .inputs import ReportInput, ReportInputError
from .inspect_section import inspect_section
from .schema import HISTORY, SchemaError, conform

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ReportWarning(UserWarning):
    """Something an input names that the page leaves out, and why."""


def figure_uri(name: Any, source: str) -> str | None:
    """The figure ``name`` that the JSON ``source`` records, as an inline PNG, if it is one and lies inside
    the JSON's own folder (no absolute path, no ``..``, no symlink out); else None and a warning naming it."""
    folder = Path(source).resolve().parent
    path = Path(str(name))
    reason = None
    if not isinstance(name, str) or path.is_absolute() or ".." in path.parts:
        reason = "is not a path inside the JSON's folder"
    elif not (folder / path).resolve().is_relative_to(folder):
        reason = "leads outside the JSON's folder"
    elif not (folder / path).is_file():
        reason = "does not exist"
    else:
        with open(folder / path, "rb") as file:
            data = file.read(len(PNG_MAGIC))
        if data != PNG_MAGIC:
            reason = "is not a PNG"
    if reason:
        warnings.warn(ReportWarning(f"report: figure {str(name)[:200]!r} of {source!r} {reason}; left out"),
                      stacklevel=2)
        return None
    return "data:image/png;base64," + base64.b64encode((folder / path).read_bytes()).decode("ascii")


def table_rows(probs_head: list[list[float]]) -> list[list[dict]]:
    """Rows of cells ``{'value': '0.982', 'top': bool}``, the argmax of each row marked."""
    rows = []
    for row in probs_head:
        top = max(range(len(row)), key=row.__getitem__)
        rows.append([{"value": f"{v:.3f}", "top": i == top} for i, v in enumerate(row)])
    return rows


def exam_section(item: ReportInput) -> dict:
    labels = list(EXAM_MAPPING)
    problems = []
    for number, p in sorted(item.data["problems"].items(), key=lambda kv: int(kv[0])):
        title = f"Problem {number}: {p['formulation']}, seed {p['seed']}"
        fig = probability_heatmap(torch.tensor(p["probs_head"]), labels, title)
        problems.append({"number": number, "title": title, "p": p, "rows": table_rows(p["probs_head"]),
                         "figure": data_uri(fig), "alt": f"Heatmap of problem {number}'s fitted probabilities",
                         "inside": _inside(number, p.get("inside"))})
    return {"labels": labels, "problems": problems, "checks": item.data.get("checks", {})}


def _inside(number: str, inside: dict | None) -> dict | None:
    """The compact "inside" panel: the trained model's hidden units (and cell state) over the table's rows."""
    from ..inspect.figures import positions_heatmap
    from ..sequence.data import EXAM_TEXT

    panels = {name: values for name, values in (inside or {}).items() if values is not None}
    if not panels:
        return None
    return {"uri": data_uri(positions_heatmap(panels, EXAM_TEXT[:10])),
            "alt": f"Problem {number}'s {' and '.join(panels)} per unit at each of the table's positions"}


def verify_section(item: ReportInput) -> dict:
    return {"families": item.data["families"], "epochs": item.data.get("epochs"), "seed": item.data.get("seed")}


def claims_section(item: ReportInput) -> dict:
    claims = []
    for number, claim in sorted(item.data["claims"].items(), key=lambda kv: int(kv[0])):
        figures = []
        for name, path in (claim.get("figures") or {}).items():
            uri = figure_uri(path, item.source)
            if uri is not None:
                figures.append({"uri": uri, "alt": f"Claim {number}: {name} figure"})
        evidence = {k: v for k, v in claim.get("evidence", {}).items() if k in ("task", "accuracy", "counts", "abcd",
                                                                                   "hi?hello!!", "accuracy_ci95")}
        claims.append({"number": number, "claim": claim, "figures": figures,
                       "evidence": json.dumps(evidence, indent=1)[:4000]})
    return {"claims": claims}


def _number(value, spec: str) -> str:
    """A number formatted for a table cell; an absent one (a diverged run's) as a dash."""
    return "—" if value is None else format(value, spec)


def sweep_section(item: ReportInput) -> dict:
    runs, summary = item.data["runs"], item.data["summary"]
    label = lambda s: f"{s['model']} h{s['hidden_size']} lr {s['lr']:g}"  # noqa: E731
    groups = {label(s): [r for r in runs if (r["model"], r["hidden_size"], r["lr"]) == (s["model"], s["hidden_size"],
                                                                                         s["lr"])
                         and r.get("diverged_at_epoch") is None] for s in summary}
    figures = [{"uri": data_uri(distributions({k: [r["accuracy"] for r in v] for k, v in groups.items()},
                                              "final accuracy over seeds", "accuracy")),
                "alt": "Histogram of the final accuracy over seeds, per configuration"},
               {"uri": data_uri(distributions({k: [r["final_loss"] for r in v] for k, v in groups.items()},
                                              "final loss over seeds", "loss (nats/char)")),
                "alt": "Histogram of the final loss over seeds, per configuration"}]
    spreads = [{"label": label(s), "spread": s["table_spread"],
                "median_rows": table_rows(s["table_spread"]["median"])} for s in summary if s.get("table_spread")]
    rows = [[s["model"], str(s["hidden_size"]), f"{s['lr']:g}", str(s["seeds"]), str(s.get("diverged") or 0),
             _number((s["loss_quantiles"] or {}).get("0.05"), ".4g"), _number(s["loss_median"], ".4g"),
             _number((s["loss_quantiles"] or {}).get("0.95"), ".4g"), _number(s["accuracy_mean"], ".3f"),
             _number(s["solved_fraction"], ".0%")] for s in summary]
    return {"rows": rows, "runs": len(runs), "engine": item.data.get("engine"), "figures": figures,
            "spreads": spreads, "labels": list(EXAM_MAPPING)}


def bench_section(item: ReportInput) -> dict:
    return {"records": item.data["records"], "compile": item.data.get("compile"), "threads": item.data.get("threads")}


def run_section(item: ReportInput) -> dict:
    """What a run folder has: a partial one (stopped before its first evaluation, only a checkpoint, only a
    history) shows what it holds. A broken history or checkpoint is a one-line error naming the file."""
    from ..generate import generate, predict
    from ..run.checkpoint import CheckpointError, load_checkpoint
    from ..run.folder import RunFolderError, read_history

    folder = item.data
    out: dict[str, Any] = dict.fromkeys(("last", "curves", "steps", "sample", "heatmap", "model_config",
                                         "train_config", "step", "checkpoint", "live"))
    out["folder"] = str(folder)
    try:
        history = read_history(folder) if (folder / "history.json").is_file() else None
    except RunFolderError as error:
        raise ReportInputError(f"report: {error}") from None
    if history:
        try:
            history = conform(history, HISTORY)
        except SchemaError as error:
            raise ReportInputError(f"report: {str(folder / 'history.json')!r} has a broken {error}") from None
        out["steps"] = len(history["step_losses"])
    if history and history["evals"]:
        evals = history["evals"]
        last = evals[-1]
        out["last"] = (f"{out['steps']} steps · last evaluation at step {last['step']}: train loss "
                       f"{last['train_loss']:.4f}" + ("" if last["val_loss"] is None else
                                                      f", validation loss {last['val_loss']:.4f}, accuracy "
                                                      f"{_number(last['val_accuracy'], '.3f')}"))
        curves = {"train": ([e["step"] for e in evals], [e["train_loss"] for e in evals])}
        if evals[0].get("val_loss") is not None:
            curves["validation"] = ([e["step"] for e in evals], [e["val_loss"] for e in evals])
        out["curves"] = data_uri(loss_curves(curves, title="loss (nats/char)"))
    checkpoint = folder / ("best.safetensors" if (folder / "best.safetensors").is_file() else "last.safetensors")
    if checkpoint.is_file():
        try:
            ckpt = load_checkpoint(checkpoint)
            model = ckpt.build_model("cpu")
        except CheckpointError as error:
            raise ReportInputError(f"report: {error}") from None
        sample = generate(model, ckpt.vocab, ckpt.vocab.chars[0], 300, temperature=0.8, seed=0)
        shown = sample[:40]
        fig = probability_heatmap(predict(model, ckpt.vocab, shown), ckpt.vocab.chars,
                                  "next-character probabilities", rows=len(shown), row_labels=list(shown))
        out.update({"sample": sample, "heatmap": data_uri(fig), "model_config": ckpt.model_config.__dict__,
                    "train_config": ckpt.train_config, "step": ckpt.step, "checkpoint": checkpoint.name})
        if item.live:
            from ..export.html import export_html

            out["live"] = export_html(model, ckpt.vocab, f"{folder.name}/{checkpoint.name}")
    return out


def tune_section(item: ReportInput) -> dict:
    """The leaderboard (best first) and the optimization history and parameters, drawn from the JSON."""
    from ..tune.results import flags_text, history_figure, parameters_figure, ranked

    trials = item.data["trials"]
    rows = [[str(r["number"]), r["state"], _number(r["value"], ".4f"), str(r["steps"] or 0),
             _number(r["seconds"], ".1f"), flags_text(r["params"])] for r in ranked(trials)]
    figures = [{"uri": data_uri(history_figure(trials)), "alt": "Each trial's validation loss and the best so far"},
               {"uri": data_uri(parameters_figure(trials)), "alt": "Each parameter against the validation loss"}]
    return {"rows": rows, "best": item.data["best"], "study": item.data["study"], "figures": figures,
            "metric": item.data["metric"]}


SECTIONS = {"tune": tune_section, "inspect": inspect_section, "exam": exam_section, "verify": verify_section,
            "claims": claims_section,
            "sweep": sweep_section, "bench": bench_section, "run": run_section}
