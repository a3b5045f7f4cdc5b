"""The figures of ``inspect``'s page: unit x time heatmaps, gate saturation, the memory horizon, the hidden
state's 2-D projection. Each returns a matplotlib Figure (no pyplot, as ``plots.py``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..plots import MAX_ROWS


def _label(char: str) -> str:
    return repr(char)[1:-1]


def unit_heatmap(values, chars: Sequence[str], title: str, signed: bool = True, marks: Sequence[int] = ()):
    """``values`` (n, H) as units (rows) x positions (columns), the character read under each column;
    ``marks``: columns outlined (the exam's two l's and two !'s)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=np.float64)[:MAX_ROWS]
    n, hidden = values.shape
    limit = max(float(np.abs(values).max()), 1e-12) if signed else 1.0
    fig = Figure(figsize=(min(max(4.0, 0.16 * n + 2.0), 16.0), min(max(2.4, 0.12 * hidden + 1.4), 12.0)))
    ax = fig.add_subplot()
    image = ax.imshow(values.T, aspect="auto", interpolation="nearest", cmap="bwr" if signed else "viridis",
                      vmin=-limit if signed else 0.0, vmax=limit)
    if n <= 80:
        ax.set_xticks(range(n), [_label(c) for c in chars[:n]], fontsize=7)
    ax.set_xlabel("position (the character read)")
    ax.set_ylabel("unit")
    for column in marks:
        ax.add_patch(Rectangle((column - 0.5, -0.5), 1, hidden, fill=False, edgecolor="black", linewidth=1.5))
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def positions_heatmap(panels: dict[str, object], chars: Sequence[str]):
    """Compact heatmaps side by side, one per ``name -> values`` (n, H), positions down (as the exam's table
    rows) and units across."""
    from matplotlib.figure import Figure

    shown = {name: np.asarray(values, dtype=np.float64)[:MAX_ROWS] for name, values in panels.items()}
    n, hidden = next(iter(shown.values())).shape
    width = min(max(2.2, 0.28 * hidden + 1.4), 8.0)
    fig = Figure(figsize=(width * len(shown), max(2.6, 0.3 * n + 1.0)))
    for j, (name, values) in enumerate(shown.items()):
        ax = fig.add_subplot(1, len(shown), j + 1)
        limit = max(float(np.abs(values).max()), 1e-12)
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_yticks(range(n), [f"{t} {_label(c)}" for t, c in enumerate(chars[:n])], fontsize=7)
        if hidden <= 32:
            ax.set_xticks(range(hidden), [str(u) for u in range(hidden)], fontsize=6)
        ax.set_xlabel("unit", fontsize=8)
        ax.set_title(f"inside: {name}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.08)
    fig.tight_layout()
    return fig


def saturation_scatter(gates: dict[str, tuple[Sequence[float], Sequence[float]]], title: str):
    """Per gate, each unit's share of steps left-saturated (x) against right-saturated (y), as in Karpathy et
    al.: units on the x = 0 line are never switched off, those near (0, 1) almost always open."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0], color="#bbb", linewidth=0.8)
    for name, (left, right) in gates.items():
        ax.scatter(left, right, s=12, alpha=0.7, label=name)
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="fraction left-saturated (< 0.1)",
           ylabel="fraction right-saturated (> 0.9)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="gate")
    fig.tight_layout()
    return fig


def horizon_curve(by_distance: Sequence[float], mean_by_distance: Sequence[float], position: int, positions: int):
    """Influence against distance: at one position, and averaged (how far back does the model look?)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    ks = range(len(by_distance))
    ax.plot(ks, mean_by_distance, marker="o", markersize=3, label=f"mean over {positions} positions")
    ax.plot(ks, by_distance, marker=".", markersize=3, alpha=0.7, label=f"at position {position}")
    ax.set(xlabel="distance k (characters back)", ylabel="|d log p(next) / d input(t-k)|")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_title("memory horizon", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def projection(values, chars: Sequence[str], title: str):
    """The hidden-state trajectory (n, H) on its first two principal components, each point coloured by the
    character just read, consecutive positions joined."""
    from matplotlib.figure import Figure

    x = np.asarray(values, dtype=np.float64)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:2].T if len(s) >= 2 else np.column_stack([x @ vt[:1].T, np.zeros(len(x))])
    explained = s[:2] ** 2 / max(float((s ** 2).sum()), 1e-300)
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    ax.plot(coords[:, 0], coords[:, 1], color="#ccc", linewidth=0.6, zorder=1)
    common = [c for c, _ in sorted({c: chars.count(c) for c in set(chars)}.items(), key=lambda kv: -kv[1])[:10]]
    for char in common:
        at = [i for i, c in enumerate(chars) if c == char]
        ax.scatter(coords[at, 0], coords[at, 1], s=16, zorder=2, label=repr(char))
    rest = [i for i, c in enumerate(chars) if c not in common]
    if rest:
        ax.scatter(coords[rest, 0], coords[rest, 1], s=10, color="#999", zorder=2, label="other")
    ax.set(xlabel=f"PC 1 ({explained[0]:.0%})",
           ylabel=f"PC 2 ({explained[1]:.0%})" if len(explained) > 1 else "PC 2")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
