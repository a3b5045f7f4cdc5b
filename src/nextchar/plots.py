"""Figures: the exam's probability heatmap and loss curves. Each returns a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so nothing needs a display and
nothing leaks between calls; in a notebook, a returned Figure displays inline.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

# A stale font cache makes matplotlib log "findfont: Font family ['cmss10'] not found" for every mathtext
# tick label (log axes) while it falls back to a font it has: noise, not an error the user can act on.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


MAX_ROWS, MAX_COLUMNS = 200, 40
"""A heatmap shows at most this many positions and characters, so its pixels (and memory) stay bounded
whatever --rows or the vocabulary; the JSON and CSV keep every value."""


def probability_heatmap(probs: Tensor, labels: Sequence[str], title: str = "", rows: int = 10,
                        row_labels: Sequence[str] | None = None):
    """The exam's picture: ``matshow(probs[:rows], cmap='bwr', vmin=-1, vmax=1)``, characters on x.

    Past :data:`MAX_ROWS` rows only the first are drawn; past :data:`MAX_COLUMNS` characters only those most
    likely somewhere in the drawn rows (kept in vocabulary order); the title says so."""
    from matplotlib.figure import Figure

    rows, notes = min(rows, len(probs)), []
    if rows > MAX_ROWS:
        notes.append(f"the first {MAX_ROWS} of {rows} rows")
        rows = MAX_ROWS
    shown = probs[:rows].detach().cpu()  # (rows, V)
    columns = list(range(len(labels)))
    if len(labels) > MAX_COLUMNS:
        columns = sorted(shown.max(0).values.topk(MAX_COLUMNS).indices.tolist())
        notes.append(f"the {MAX_COLUMNS} likeliest of {len(labels)} characters")
    title = f"{title} ({'; '.join(notes)})" if title and notes else title or "; ".join(notes)
    fig = Figure(figsize=(max(4.0, 0.5 * len(columns) + 1.5), max(3.0, 0.35 * rows + 1.2)))
    ax = fig.add_subplot()
    image = ax.matshow(shown[:, columns].numpy(), cmap="bwr", vmin=-1, vmax=1)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([repr(labels[c])[1:-1] for c in columns])
    if row_labels is not None:
        ax.set_yticks(range(len(row_labels[:rows])))
        ax.set_yticklabels([repr(c)[1:-1] for c in row_labels[:rows]])
    if title:
        ax.set_title(title, pad=20)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def loss_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], title: str = "",
                xlabel: str = "step", ylabel: str = "loss", logy: bool = False):
    """One line per name: ``{'train': (xs, ys), 'validation': (xs, ys)}``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), label=name, marker="o" if len(xs) < 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path) -> Path:
    """Write a figure as PNG atomically, creating the folder; OS errors name the path."""
    import io

    from .outputs import write_bytes_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def distributions(groups: dict[str, Sequence[float]], title: str = "", xlabel: str = "", bins: int = 30):
    """Overlaid histograms, one per label (e.g. one per sweep configuration)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for label, values in groups.items():
        ax.hist(list(values), bins=bins, alpha=0.6, label=f"{label} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("runs")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def grid_heatmap(values, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
                 ylabel: str = "", xlabel: str = ""):
    """A value per (row, column) cell, annotated: e.g. mean accuracy per hidden size x learning rate."""
    import numpy as np
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=float)
    fig = Figure(figsize=(max(4.0, 0.9 * len(col_labels) + 2), max(3.0, 0.6 * len(row_labels) + 1.5)))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", color="w", fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
