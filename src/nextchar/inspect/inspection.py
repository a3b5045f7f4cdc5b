"""``nextchar inspect``'s computation: one pass over a text of any length, chunk by chunk (``trace_chunks``),
in bounded memory: every position's arrays go to disk (``exports.py``, ``npz.py``) when asked; what the
page shows is kept for the shown window only; unit search and saturation are accumulated (``units.py``);
the states the influence starts from are kept at the few positions it needs.

The result is the *document*: the JSON layout of ``inspect --json`` with the arrays of the shown window
(``text`` is the window's text and ``start`` its first position), which the page's section reads.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..cells import State
from ..model import CharModel
from ..sequence.data import EXAM_TEXT
from ..vocab import Vocab
from .exports import chunk_arrays
from .influence import HORIZON, influence, influence_positions
from .trace import LayerTrace, Trace, concat, trace_chunks
from .units import SIGMOID_GATES, FeatureCorrelations, SaturationCounts, TextFeatures, pattern_bits

EXAM_PERIOD = EXAM_TEXT[:10]
"""``hi?hello!!``: one period of the exam's text."""
MAX_STRIPS = 8
"""Text strips shown by default: the best unit of each built-in feature, at most this many."""
STRIP_FEATURES = ("inside_quotes", "bracket_depth", "line_position", "newline", "whitespace", "digit", "uppercase")


@dataclass
class InspectOptions:
    rows: int = 200
    """Positions shown (strips, heatmaps, projection) from ``offset``."""
    offset: int = 0
    layer: int | None = None
    """The layer whose units the strips and the projection show; None: the last."""
    units: list[int] | None = None
    """Units shown as strips; None: the best unit per feature."""
    position: int | None = None
    """Where the influence is measured; None: the last shown position."""
    horizon: int = HORIZON
    features: dict[str, str] = field(default_factory=dict)
    """User features: name -> regular expression."""
    top: int = 3
    """Units listed per feature."""
    feature_bits: dict[str, np.ndarray] | None = None
    """Each feature's matches over the text as bits, made by :func:`check_options` (which matches each
    pattern once, in bounded time, so one that matches nothing is refused before any work)."""


def check_options(model: CharModel, vocab: Vocab, text: str, options: InspectOptions) -> InspectOptions:
    """``options`` with the defaults filled in, or a one-line error naming the bad value (before any work)."""
    config = model.config
    if not text:
        raise ValueError("inspect: the text is empty; give at least one character")
    missing = vocab.unknown(text)
    if missing:
        raise ValueError(f"inspect: characters {missing[:20]!r} of the text are not in the model's vocabulary "
                         f"({len(vocab)} characters: {''.join(vocab.chars)[:60]!r})")
    if not 0 <= options.offset < len(text):
        raise ValueError(f"inspect: --offset {options.offset} is past the text's end ({len(text)} characters); "
                         f"expected 0..{len(text) - 1}")
    layer = config.num_layers - 1 if options.layer is None else options.layer
    if not 0 <= layer < config.num_layers:
        raise ValueError(f"inspect: --layer {layer} does not exist; the model has layers 0..{config.num_layers - 1}")
    bad = [u for u in options.units or [] if not 0 <= u < config.hidden_size]
    if bad:
        raise ValueError(f"inspect: --units {bad} past the hidden size {config.hidden_size}; expected units "
                         f"0..{config.hidden_size - 1}")
    last_shown = min(options.offset + options.rows, len(text)) - 1
    position = last_shown if options.position is None else options.position
    if not 0 <= position < len(text):
        raise ValueError(f"inspect: --position {position} is outside the text; expected 0..{len(text) - 1}")
    if options.horizon < 0:
        raise ValueError(f"inspect: --horizon {options.horizon} must be >= 0")
    check_inspect_memory(len(text), config, len(vocab), options.rows)
    bits = options.feature_bits
    if bits is None:  # compiles, matches somewhere within the time bound, or a named error
        bits = pattern_bits(text, options.features)
    horizon = min(options.horizon, len(text) - 1)  # no distance past the text's start
    return InspectOptions(options.rows, options.offset, layer, options.units, position, horizon,
                          dict(options.features), options.top, bits)


class _Window:
    """The slices of each chunk's trace inside [start, stop): the arrays the page shows."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop, self.parts = start, stop, []

    def add(self, first: int, part: Trace) -> None:
        lo, hi = max(self.start - first, 0), min(self.stop - first, len(part.text))
        if lo < hi:
            self.parts.append(_copied_slice(part, lo, hi))

    def trace(self) -> Trace:
        return concat(self.parts)


def _copied_slice(part: Trace, lo: int, hi: int) -> Trace:
    """Positions lo..hi-1 of a chunk's trace, copied: a view would keep the whole chunk alive."""
    def cut(t):
        return t[lo:hi].clone()
    layers = [LayerTrace(cut(layer.h), None if layer.c is None else cut(layer.c),
                         {g: cut(v) for g, v in layer.gates.items()}) for layer in part.layers]
    return Trace(part.text[lo:hi], part.vocab, layers, cut(part.probs))


def _columns(base: np.ndarray, chars: list[str], piece: str) -> np.ndarray:
    """(n, F): a chunk's features, the built-in and user ones (``base``, (n, F0)) then one per character."""
    n = len(piece)
    columns = np.zeros((n, base.shape[1] + len(chars)))
    columns[:, :base.shape[1]] = base
    index = {c: base.shape[1] + j for j, c in enumerate(chars)}
    columns[np.arange(n), [index[c] for c in piece]] = 1.0
    return columns


INSPECT_BYTES_PER_CHARACTER = 6
"""Memory an inspection keeps per character of its text: the text (up to 4 bytes a character), the set of
its characters, and each pattern's bits; every position's arrays go to disk, not here."""


def check_inspect_memory(characters: int, config, vocab_size: int, rows: int) -> None:
    """Refuse, before any work, an inspection whose text and shown window would not fit the memory budget
    (``characters``: a file's size in bytes bounds its characters)."""
    from ..budget import check_memory
    from .exports import array_widths

    # the shown window's arrays: float32 tensors, then the document's lists of Python floats (~36 bytes each)
    shown = min(rows, characters) * sum(array_widths(config, vocab_size).values()) * 40
    check_memory(characters * INSPECT_BYTES_PER_CHARACTER + shown,
                 f"inspect: {characters:,} characters with {min(rows, characters):,} shown",
                 "inspect a shorter part of the text (--offset and --rows show any part of it; a shorter "
                 "--text-file reads less)")


def inspect_text(model: CharModel, vocab: Vocab, text: str, options: InspectOptions | None = None,
                 sinks: Sequence = (), progress: Callable[[int], None] | None = None) -> dict:
    """Trace ``text`` once and measure everything ``inspect`` shows; every position's arrays go to each of
    ``sinks`` (``exports.ArrayStore``, ``npz.NpzWriter``) chunk by chunk, and ``progress(n)`` hears of each
    chunk's n characters. Returns the document (see the module's docstring)."""
    options = check_options(model, vocab, text, options or InspectOptions())
    config, hidden = model.config, model.config.hidden_size
    features = TextFeatures(options.feature_bits)
    chars = sorted(set(text))
    stats = [FeatureCorrelations([*features.names, *(f"char {c!r}" for c in chars)], hidden)
             for _ in range(config.num_layers)]
    counts: list[dict[str, SaturationCounts]] = [{} for _ in range(config.num_layers)]
    window = _Window(options.offset, options.offset + options.rows)
    period_at = _exam_period_start(vocab, text)
    period = _Window(period_at, period_at + len(EXAM_PERIOD)) if period_at is not None else None
    positions = influence_positions(len(text), options.horizon)
    wanted = {t - min(t, options.horizon) - 1 for t in [options.position, *positions]} - {-1}
    states: dict[int, list[State]] = {}
    start = 0
    for part in trace_chunks(model, vocab, [text]):
        stop = start + len(part.text)
        if sinks:
            arrays = chunk_arrays(part)
            for sink in sinks:
                sink.append(arrays)
        columns = _columns(features.next(part.text), chars, part.text)
        for k, layer in enumerate(part.layers):
            stats[k].update(layer.h, columns)
            for name in SIGMOID_GATES:
                if name in layer.gates:
                    counts[k].setdefault(name, SaturationCounts(hidden)).update(layer.gates[name])
        for kept in (window, period):
            if kept is not None:
                kept.add(start, part)
        states.update({p: _state_at(part, p - start) for p in wanted if start <= p < stop})
        start = stop
        if progress is not None:
            progress(len(part.text))
    found = influence(model, vocab, text, options.position, states.get, options.horizon, positions)
    units = [{"layer": k, **record} for k, s in enumerate(stats) for record in s.rank(options.top)]
    return _document(model, vocab, text, options, window.trace(), units, counts, found,
                     None if period is None else (period_at, period.trace()))


def _state_at(part: Trace, at: int) -> list[State]:
    """Each layer's state after position ``at`` of a chunk, copied (a view would keep the chunk alive)."""
    return [layer.h[at].clone() if layer.c is None else (layer.h[at].clone(), layer.c[at].clone())
            for layer in part.layers]


def _document(model, vocab, text, options, shown: Trace, units, counts, found, period) -> dict:
    """The JSON layout of ``inspect --json`` with the shown window's arrays."""
    config, hidden = model.config, model.config.hidden_size
    return {
        "kind": "inspect", "checkpoint": None, "text": shown.text, "start": options.offset, "length": len(text),
        "window": {"offset": options.offset, "rows": len(shown.text)},
        "vocab": list(vocab.chars), "family": config.family, "num_layers": config.num_layers,
        "hidden_size": hidden, "probs": shown.probs.tolist(),
        "layers": [_layer_lists(layer) for layer in shown.layers],
        "units": units,
        "saturation": [{"layer": k, "gate": name, "unit": unit, "left": float(left[unit]), "right": float(right[unit])}
                       for k, gates in enumerate(counts) for name, c in gates.items()
                       for left, right in [c.shares()] for unit in range(hidden)],
        "influence": {"position": found.position, "by_distance": found.by_distance,
                      "mean_by_distance": found.mean_by_distance, "target": found.target,
                      "context": text[max(found.position - options.horizon, 0):found.position + 1],
                      "positions": len(found.positions)},
        "strips": _strips(units, options, hidden),
        "exam_period": None if period is None else {"start": period[0],
                                                    "layers": [_layer_lists(layer) for layer in period[1].layers]},
        "command": None,
    }


def _layer_lists(layer: LayerTrace) -> dict:
    lists = {"h": layer.h.tolist(), "gates": {name: values.tolist() for name, values in layer.gates.items()}}
    if layer.c is not None:
        lists["c"] = layer.c.tolist()
    return lists


def _strips(units: list[dict], options: InspectOptions, hidden_size: int) -> list[dict]:
    """The units shown as text strips: those asked for; else, for a model of at most MAX_STRIPS units, every
    unit (with the feature it tracks best); else the strongest unit of each built-in and user feature on the
    shown layer (each unit once, strongest first)."""
    if options.units:
        return [{"layer": options.layer, "unit": u, "feature": None, "correlation": None} for u in options.units]
    on_layer = [r for r in units if r["layer"] == options.layer]
    if hidden_size <= MAX_STRIPS:
        best_of = {}
        for record in on_layer:
            current = best_of.get(record["unit"])
            if current is None or abs(record["correlation"]) > abs(current["correlation"]):
                best_of[record["unit"]] = record
        return [dict(best_of.get(u, {"layer": options.layer, "unit": u, "feature": None, "correlation": None}))
                for u in range(hidden_size)]
    wanted = (*STRIP_FEATURES, *options.features)
    best: dict[int, dict] = {}
    for record in on_layer:
        if record["feature"] in wanted:
            current = best.get(record["unit"])
            if current is None or abs(record["correlation"]) > abs(current["correlation"]):
                best[record["unit"]] = record
    ranked = sorted(best.values(), key=lambda r: -abs(r["correlation"]))
    return [dict(r) for r in ranked[:MAX_STRIPS]] or [{"layer": options.layer, "unit": 0, "feature": None,
                                                        "correlation": None}]


def _exam_period_start(vocab: Vocab, text: str) -> int | None:
    """Where the exam's question can be asked of this text: the start of its second ``hi?hello!!`` (the
    state then carries one period), or its first; None if the model does not read the exam's characters."""
    if set(vocab.chars) != set(EXAM_PERIOD):
        return None
    first = text.find(EXAM_PERIOD)
    if first < 0:
        return None
    second = text.find(EXAM_PERIOD, first + len(EXAM_PERIOD))
    return second if second == first + len(EXAM_PERIOD) else first
