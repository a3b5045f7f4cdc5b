"""Which units track what: features of the text at each position, units ranked by how strongly their value
follows each feature (|Pearson correlation|), and how often each gate sits saturated.

A feature is one number per position, read after that position's character (as the hidden state is):
built in (inside quotes, bracket depth, position in the line, a newline, whitespace, a digit, an upper-case
letter, each character) or given as a regular expression (1 inside a match, 0 outside).
"""
from __future__ import annotations

import re

import numpy as np
from torch import Tensor

OPENING, CLOSING = "([{", ")]}"
SIGMOID_GATES = ("i", "f", "o", "r", "z")
"""The gates in (0, 1), whose saturation (near 0 or near 1) means a unit is switched off or on."""


def text_features(text: str, patterns: dict[str, str] | None = None, characters: bool = True
                  ) -> dict[str, np.ndarray]:
    """name -> (T,) float64 values at each position of ``text``; ``patterns``: name -> regular expression."""
    quote, depth, column = None, 0, 0
    inside, depths, columns = np.zeros(len(text)), np.zeros(len(text)), np.zeros(len(text))
    for t, char in enumerate(text):
        if quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
        depth = depth + 1 if char in OPENING else max(depth - 1, 0) if char in CLOSING else depth
        column = 0 if char == "\n" else column + 1
        inside[t], depths[t], columns[t] = quote is not None, depth, column
    features = {"inside_quotes": inside, "bracket_depth": depths, "line_position": columns,
                "newline": _where(text, str.__eq__, "\n"), "whitespace": _where(text, str.isspace),
                "digit": _where(text, str.isdigit), "uppercase": _where(text, str.isupper)}
    for name, pattern in (patterns or {}).items():
        features[name] = regex_feature(text, name, pattern)
    if characters:
        for char in sorted(set(text)):
            features[f"char {char!r}"] = _where(text, str.__eq__, char)
    return features


def _where(text: str, test, *args) -> np.ndarray:
    return np.array([bool(test(c, *args)) for c in text], dtype=np.float64)


def regex_feature(text: str, name: str, pattern: str) -> np.ndarray:
    """1 at the positions inside a match of ``pattern``, 0 elsewhere; a pattern that does not compile or
    never matches is an error naming it."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"inspect: --feature {name}={pattern!r} is not a regular expression: {error}") from None
    values = np.zeros(len(text))
    for match in compiled.finditer(text):
        values[match.start():match.end()] = 1.0
    if not values.any():
        raise ValueError(f"inspect: --feature {name}={pattern!r} matches nothing in the text")
    return values


def correlations(values: Tensor | np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit's values (T, H) with ``feature`` (T,); 0 where either is constant."""
    x = np.asarray(values, dtype=np.float64)
    x = x - x.mean(0)
    f = feature - feature.mean()
    norms = np.sqrt((x * x).sum(0) * (f * f).sum())
    return np.divide(f @ x, norms, out=np.zeros(x.shape[1]), where=norms > 0)


def rank_units(values: Tensor | np.ndarray, features: dict[str, np.ndarray], top: int = 3) -> list[dict]:
    """For each feature, the ``top`` units whose values correlate most strongly (either sign) with it:
    ``{"feature", "unit", "correlation"}`` records, strongest first within each feature."""
    ranked = []
    for name, feature in features.items():
        r = correlations(values, feature)
        for unit in np.argsort(-np.abs(r), kind="stable")[:top]:
            ranked.append({"feature": name, "unit": int(unit), "correlation": float(r[unit])})
    return ranked


def saturation(gate: Tensor | np.ndarray, low: float = 0.1, high: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's share of positions where the gate (T, H) is left-saturated (< low) and right-saturated
    (> high), as in Karpathy et al.'s "Visualizing and Understanding Recurrent Networks"."""
    g = np.asarray(gate)
    return (g < low).mean(0), (g > high).mean(0)
