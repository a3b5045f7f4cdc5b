"""What a study found: the leaderboard, the best configuration and the ``nextchar train`` command that trains
it, the JSON, and the figures (optimization history, each parameter against the loss, importances)."""
from __future__ import annotations

import shlex
from collections.abc import Sequence


def train_command(argv: Sequence[str], out: str = "runs/best") -> str:
    """``nextchar train`` with a trial's full argument list, into ``out``."""
    return shlex.join(["nextchar", "train", *argv, "--out", out])


def ranked(records: list[dict]) -> list[dict]:
    """The trials best first: by value (those without one last), then number."""
    return sorted(records, key=lambda r: (r["value"] is None, r["value"] if r["value"] is not None else 0.0,
                                          r["number"]))


def flags_text(params: dict | None) -> str:
    """A trial's parameters as train flags, floats at 4 significant digits."""
    return " ".join(f"--{k} {short_value(v)}" for k, v in (params or {}).items())


def leaderboard(records: list[dict], top: int | None = None) -> str:
    """One line per trial, best first: number, state, best validation loss, steps, seconds, parameters."""
    lines = [f"{'trial':>5}  {'state':<8} {'val loss':>9} {'steps':>6} {'seconds':>8}  parameters"]
    for r in ranked(records)[:top]:
        value = f"{r['value']:.4f}" if r["value"] is not None else "—"
        lines.append(f"{r['number']:>5}  {r['state']:<8} {value:>9} {r['steps'] or 0:>6} "
                     f"{r['seconds'] or 0:>8.1f}  {flags_text(r['params'])}")
    return "\n".join(lines)


def short_value(value) -> str:
    """A float flag at 4 significant digits for the table (the commands keep every digit)."""
    text = str(value)
    try:
        return f"{float(text):.4g}" if any(c in text for c in ".e") else text
    except ValueError:
        return text


def best_record(records: list[dict]) -> dict | None:
    complete = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    return min(complete, key=lambda r: (r["value"], r["number"])) if complete else None


def history_figure(records: list[dict]):
    """Each trial's best validation loss by trial number, and the best so far."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.8))
    ax = fig.add_subplot()
    ordered = sorted((r for r in records if r["value"] is not None), key=lambda r: r["number"])
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        shown = [r for r in ordered if r["state"] == state]
        ax.scatter([r["number"] for r in shown], [r["value"] for r in shown], marker=marker, label=state.lower())
    best, running = [], float("inf")
    for r in ordered:
        if r["state"] == "COMPLETE":
            running = min(running, r["value"])
        best.append(running)
    if ordered:
        ax.step([r["number"] for r in ordered], best, where="post", color="black", linewidth=1, label="best so far")
    ax.set(xlabel="trial", ylabel="validation loss (nats/char)", title="optimization history")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def parameters_figure(records: list[dict]):
    """Each parameter's value against the trial's validation loss, one panel per parameter."""
    from matplotlib.figure import Figure

    names = sorted({k for r in records for k in (r["params"] or {})})
    scored = [r for r in records if r["value"] is not None]
    fig = Figure(figsize=(max(3.2 * len(names), 4.0), 3.4))
    for i, name in enumerate(names or ["(none)"]):
        ax = fig.add_subplot(1, max(len(names), 1), i + 1)
        points = [(r["params"][name], r["value"]) for r in scored if name in (r["params"] or {})]
        try:
            xs = [float(x) for x, _ in points]
        except ValueError:  # a choice: its values as categories
            categories = sorted({x for x, _ in points})
            xs = [categories.index(x) for x, _ in points]
            ax.set_xticks(range(len(categories)), categories)
        ax.scatter(xs, [v for _, v in points], s=18)
        if name == "lr":
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
        ax.set(xlabel=name, ylabel="validation loss" if i == 0 else "")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def importances_figure(importances: dict[str, float]):
    """Optuna's parameter importances (fANOVA) as bars."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, max(2.0, 0.45 * len(importances) + 1.0)))
    ax = fig.add_subplot()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (share of the loss's variance)", title="parameter importances")
    fig.tight_layout()
    return fig
