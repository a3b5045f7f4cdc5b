"""Which units track what: features of the text at each position, units ranked by how strongly their value
follows each feature (|Pearson correlation|), and how often each gate sits saturated.

A feature is one number per position, read after that position's character (as the hidden state is):
built in (inside quotes, bracket depth, position in the line, a newline, whitespace, a digit, an upper-case
letter, each character) or given as a regular expression (1 inside a match, 0 outside).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

OPENING, CLOSING = "([{", ")]}"
SIGMOID_GATES = ("i", "f", "o", "r", "z")
"""The gates in (0, 1), whose saturation (near 0 or near 1) means a unit is switched off or on."""


BUILT_IN = ("inside_quotes", "bracket_depth", "line_position", "newline", "whitespace", "digit", "uppercase")
"""The built-in features, in their column order."""


class TextFeatures:
    """The features of a text, handed out chunk by chunk as the trace reads it: :meth:`next` gives the
    columns (n, F) of the next n characters, the built-in ones first, then each pattern's. The built-in ones
    carry their state across chunks (an open quote, the bracket depth, the column); each pattern is matched
    once over the whole text (a match may cross a chunk's edge) and kept as bits, an eighth of a byte per
    character. So a text of any length costs a chunk's columns and its patterns' bits, not ~50 bytes per
    character for every feature at once."""

    def __init__(self, bits: dict[str, np.ndarray]) -> None:
        """``bits``: each pattern's matches over the whole text, by name (:func:`pattern_bits`)."""
        self.names = [*BUILT_IN, *bits]
        self._bits = bits
        self._quote, self._depth, self._column, self._at = None, 0, 0, 0

    def next(self, piece: str, dtype=np.float64) -> np.ndarray:
        n, at = len(piece), self._at
        columns = np.zeros((n, len(self.names)), dtype=dtype)
        quote, depth, column = self._quote, self._depth, self._column
        carried = []
        for char in piece:  # the three features that carry state from character to character
            if quote is None and char in "'\"":
                quote = char
            elif char == quote:
                quote = None
            depth = depth + 1 if char in OPENING else max(depth - 1, 0) if char in CLOSING else depth
            column = 0 if char == "\n" else column + 1
            carried.append((quote is not None, depth, column))
        self._quote, self._depth, self._column, self._at = quote, depth, column, at + n
        columns[:, :3] = carried
        codes = np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)  # (n,): each character's code point
        distinct = set(piece)
        for j, test in enumerate(("\n".__eq__, str.isspace, str.isdigit, str.isupper), start=3):
            columns[:, j] = np.isin(codes, [ord(c) for c in distinct if test(c)])
        for j, bits in enumerate(self._bits.values(), start=len(BUILT_IN)):
            columns[:, j] = np.unpackbits(bits[at // 8:(at + n) // 8 + 1])[at % 8:at % 8 + n]
        return columns


def text_features(text: str, patterns: dict[str, str] | None = None, characters: bool = True,
                  dtype=np.float64) -> dict[str, np.ndarray]:
    """name -> (T,) values at each position of a whole ``text`` (``patterns``: name -> regular expression),
    each character's own feature too when ``characters``; :class:`TextFeatures` hands them out by chunk."""
    features = TextFeatures(pattern_bits(text, patterns or {}))
    columns = features.next(text, dtype)
    found = {name: columns[:, j] for j, name in enumerate(features.names)}
    if characters:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (T,): each character's code point
        for char in sorted(set(text)):
            found[f"char {char!r}"] = (codes == ord(char)).astype(dtype)
    return found


FEATURE_SECONDS = 10.0
"""How long one --feature's matching may take per million characters (10 s at least): a user's pattern can
backtrack for ever (``(a+)+$`` over a long run of a's), and inspect must not freeze on it."""


def pattern_bits(text: str, patterns: dict[str, str]) -> dict[str, np.ndarray]:
    """Each pattern's :func:`regex_feature` by name, packed eight positions to a byte (``np.packbits``)."""
    return {name: np.packbits(regex_feature(text, name, pattern, np.bool_)) for name, pattern in patterns.items()}


def regex_feature(text: str, name: str, pattern: str, dtype=np.float64) -> np.ndarray:
    """1 at the positions inside a match of ``pattern``, 0 elsewhere; a pattern that does not compile, never
    matches or takes longer than :data:`FEATURE_SECONDS` per million characters is an error naming it. The
    ``regex`` package (whose syntax is ``re``'s) bounds a match in time, which the standard ``re`` cannot."""
    import regex

    try:
        compiled = regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"inspect: --feature {name}={pattern!r} is not a regular expression: {error}") from None
    seconds = FEATURE_SECONDS * max(1.0, len(text) / 1e6)
    values = np.zeros(len(text), dtype=dtype)
    try:
        for match in compiled.finditer(text, timeout=seconds):
            values[match.start():match.end()] = 1
    except TimeoutError:
        raise ValueError(f"inspect: --feature {name}={pattern!r} took longer than {seconds:g} s to match "
                         f"{len(text):,} characters (it backtracks too much); simplify the pattern") from None
    if not values.any():
        raise ValueError(f"inspect: --feature {name}={pattern!r} matches nothing in the text")
    return values


class FeatureCorrelations:
    """Pearson correlations of every unit with every feature, accumulated over a text given in chunks (the
    pairwise update of Chan et al., so a long text loses no precision): ``update`` with each chunk's
    values (n, H) and feature columns (n, F), then ``correlations()`` (F, H)."""

    def __init__(self, names: list[str], hidden_size: int) -> None:
        self.names, self.n = list(names), 0
        self.mean_x, self.m2_x = np.zeros(hidden_size), np.zeros(hidden_size)
        self.mean_f, self.m2_f = np.zeros(len(names)), np.zeros(len(names))
        self.co = np.zeros((len(names), hidden_size))  # Σ (f - mean_f)(x - mean_x): (F, H)

    def update(self, values: Tensor | np.ndarray, columns: np.ndarray) -> None:
        # The products run in torch, not numpy: numpy's BLAS threads would spin against torch's on the cores.
        x, f = torch.as_tensor(values, dtype=torch.float64), torch.as_tensor(columns, dtype=torch.float64)
        n = len(x)
        if n == 0:
            return
        dx, df = x - x.mean(0), f - f.mean(0)
        delta_x, delta_f = x.mean(0).numpy() - self.mean_x, f.mean(0).numpy() - self.mean_f
        both = self.n * n / (self.n + n)
        self.co += (df.T @ dx).numpy() + np.outer(delta_f, delta_x) * both
        self.m2_x += (dx * dx).sum(0).numpy() + delta_x ** 2 * both
        self.m2_f += (df * df).sum(0).numpy() + delta_f ** 2 * both
        self.mean_x += delta_x * n / (self.n + n)
        self.mean_f += delta_f * n / (self.n + n)
        self.n += n

    def correlations(self) -> np.ndarray:
        """(F, H); 0 where a unit or a feature is constant."""
        norms = np.sqrt(np.outer(self.m2_f, self.m2_x))
        return np.divide(self.co, norms, out=np.zeros_like(self.co), where=norms > 0)

    def rank(self, top: int = 3) -> list[dict]:
        """For each feature, the ``top`` units whose values correlate most strongly (either sign) with it:
        ``{"feature", "unit", "correlation"}`` records, strongest first within each feature; a feature constant
        over the text (no quotes in it, say) correlates with nothing and is left out."""
        ranked = []
        for name, r, spread in zip(self.names, self.correlations(), self.m2_f):
            if spread <= 0:
                continue
            for unit in np.argsort(-np.abs(r), kind="stable")[:top]:
                ranked.append({"feature": name, "unit": int(unit), "correlation": float(r[unit])})
        return ranked


def correlations(values: Tensor | np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit's values (T, H) with ``feature`` (T,); 0 where either is constant."""
    stats = FeatureCorrelations(["feature"], np.shape(values)[1])
    stats.update(values, np.asarray(feature)[:, None])
    return stats.correlations()[0]


def rank_units(values: Tensor | np.ndarray, features: dict[str, np.ndarray], top: int = 3) -> list[dict]:
    """:meth:`FeatureCorrelations.rank` over one whole text."""
    stats = FeatureCorrelations(list(features), np.shape(values)[1])
    stats.update(values, np.stack(list(features.values()), axis=1))
    return stats.rank(top)


class SaturationCounts:
    """Per unit, how many positions a gate spent left-saturated (< low) and right-saturated (> high), as in
    Karpathy et al.'s "Visualizing and Understanding Recurrent Networks", accumulated chunk by chunk."""

    def __init__(self, hidden_size: int, low: float = 0.1, high: float = 0.9) -> None:
        self.low, self.high, self.n = low, high, 0
        self.left, self.right = np.zeros(hidden_size), np.zeros(hidden_size)

    def update(self, gate: Tensor | np.ndarray) -> None:
        g = np.asarray(gate)  # (n, H)
        self.left += (g < self.low).sum(0)
        self.right += (g > self.high).sum(0)
        self.n += len(g)

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        return self.left / max(self.n, 1), self.right / max(self.n, 1)


def saturation(gate: Tensor | np.ndarray, low: float = 0.1, high: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's share of positions where the gate (T, H) is left-saturated (< low) and right-saturated
    (> high)."""
    counts = SaturationCounts(np.shape(gate)[1], low, high)
    counts.update(gate)
    return counts.shares()
