"""The page's section for an inspection (``nextchar inspect --json`` or ``--html``): what the document's
shown window holds, as text strips, heatmaps, tables and figures. Every character of the text reaches the
page through the template's escaping; colours are computed here from numbers only."""
from __future__ import annotations

import numpy as np

from ..inspect.figures import horizon_curve, projection, saturation_scatter, unit_heatmap
from .images import data_uri
from .inputs import ReportInput

PERIOD_PAIRS = ((5, 6, "l"), (8, 9, "!"))
"""In ``hi?hello!!``: the positions of the two l's and the two !'s, which the exam's model must tell apart."""
SHOWN_CHARS = {"\n": "↵", "\t": "⇥", " ": "\u00a0"}


def _shown(char: str) -> str:
    return SHOWN_CHARS.get(char, char)


def _background(value: float, limit: float) -> str:
    """Red for positive, blue for negative, as strong as |value| / limit (Karpathy's colouring)."""
    alpha = min(abs(value) / limit, 1.0) if limit > 0 else 0.0
    rgb = "214,39,40" if value >= 0 else "31,119,180"
    return f"background-color: rgba({rgb},{alpha:.3f})"


def _guesses(vocab: list[str], row: np.ndarray, top: int = 3) -> str:
    best = np.argsort(-row, kind="stable")[:top]
    return "  ".join(f"{_shown(vocab[i])} {row[i]:.2f}" for i in best)


def _strip(text: str, values: np.ndarray, probs: np.ndarray, vocab: list[str], start: int, what: str) -> list[dict]:
    limit = float(np.abs(values).max()) if len(values) else 0.0
    chars = []
    for i, (c, v, p) in enumerate(zip(text, values, probs)):
        guesses = _guesses(vocab, p)
        chars.append({"char": _shown(c), "style": _background(float(v), limit), "guesses": guesses,
                      "title": f"position {start + i}: {c!r}, {what} = {v:.3f}; next: {guesses}"})
    return chars


def _window(doc: dict):
    """The shown window's (first position, rows of the arrays)."""
    offset = doc["window"]["offset"] if doc.get("window") else doc.get("start") or 0
    rows = doc["window"]["rows"] if doc.get("window") else len(doc["text"])
    begin = offset - (doc.get("start") or 0)
    if begin < 0 or begin >= len(doc["text"]):
        raise ValueError(f"the window's offset {offset} lies outside the text the arrays cover")
    return offset, slice(begin, begin + rows)


def _layer_figures(doc: dict, shown: slice, text: str) -> list[dict]:
    figures = []
    for k, layer in enumerate(doc["layers"]):
        quantities = {"h": layer["h"], **({"c": layer["c"]} if layer.get("c") is not None else {}),
                      **{f"gate {g}": v for g, v in layer["gates"].items()}}
        for name, values in quantities.items():
            values = np.asarray(values, dtype=np.float64)[shown]
            signed = name in ("h", "c", "gate g", "gate n", "gate pre")
            figures.append({"uri": data_uri(unit_heatmap(values, text, f"layer {k}: {name}", signed=signed)),
                            "alt": f"Heatmap of layer {k}'s {name}, units by position"})
    return figures


def _saturation(doc: dict) -> list[dict]:
    by_layer: dict[int, dict[str, tuple[list, list]]] = {}
    for record in doc["saturation"]:
        left, right = by_layer.setdefault(record["layer"], {}).setdefault(record["gate"], ([], []))
        left.append(record["left"])
        right.append(record["right"])
    return [{"uri": data_uri(saturation_scatter(gates, f"layer {k}: gate saturation")),
             "alt": f"Scatter of each unit's left- against right-saturated fraction, layer {k}"}
            for k, gates in sorted(by_layer.items())]


def _influence(doc: dict) -> dict:
    found = doc["influence"]
    by_distance = found["by_distance"]
    context = found.get("context") or ""
    position = found["position"]
    limit = max(by_distance) if by_distance else 0.0
    chars = []
    for i, c in enumerate(context):
        k = len(context) - 1 - i  # distance back from the position
        value = by_distance[k] if k < len(by_distance) else 0.0
        chars.append({"char": _shown(c), "style": _background(value, limit),
                      "title": f"position {position - k} ({c!r}), k = {k}: {value:.3g}"})
    curve = horizon_curve(by_distance, found["mean_by_distance"], position, found.get("positions") or 0)
    return {"position": position, "target": found.get("target"), "chars": chars,
            "curve": data_uri(curve), "farthest": _farthest(found["mean_by_distance"])}


def _farthest(curve: list[float], share: float = 0.01) -> int:
    """The largest distance whose mean influence is still ``share`` of the strongest's."""
    top = max(curve) if curve else 0.0
    reached = [k for k, v in enumerate(curve) if top > 0 and v >= share * top]
    return max(reached) if reached else 0


def _exam_period(doc: dict) -> dict | None:
    period = doc.get("exam_period")
    if not period:
        return None
    from ..sequence.data import EXAM_TEXT

    chars = EXAM_TEXT[:10]
    figures, tables = [], []
    for k, layer in enumerate(period["layers"]):
        for name in ("h", "c"):
            if layer.get(name) is None:
                continue
            values = np.asarray(layer[name], dtype=np.float64)  # (10, H)
            fig = unit_heatmap(values, chars, f"layer {k}: {name} over one period", marks=[5, 6, 8, 9])
            figures.append({"uri": data_uri(fig), "alt": f"Every unit of layer {k}'s {name} over hi?hello!!"})
            for first, second, char in PERIOD_PAIRS:
                gap = values[first] - values[second]
                best = np.argsort(-np.abs(gap), kind="stable")[:5]
                tables.append({"layer": k, "name": name, "char": char, "positions": (first, second),
                               "rows": [{"unit": int(u), "first": f"{values[first, u]:+.3f}",
                                         "second": f"{values[second, u]:+.3f}", "gap": f"{gap[u]:+.3f}"}
                                        for u in best]})
    return {"start": period["start"], "figures": figures, "tables": tables}


def inspect_section(item: ReportInput) -> dict:
    doc = item.data
    vocab, text_all = doc["vocab"], doc["text"]
    offset, shown = _window(doc)
    text = text_all[shown]
    probs = np.asarray(doc["probs"], dtype=np.float64)[shown]
    strips = []
    for strip in doc.get("strips") or [{"layer": doc["num_layers"] - 1, "unit": 0, "feature": None,
                                        "correlation": None}]:
        values = np.asarray(doc["layers"][strip["layer"]]["h"], dtype=np.float64)[shown, strip["unit"]]
        why = (f"tracks {strip['feature']}, r = {strip['correlation']:+.2f}" if strip.get("feature") else "chosen")
        strips.append({"layer": strip["layer"], "unit": strip["unit"], "why": why,
                       "chars": _strip(text, values, probs, vocab, offset, f"h[{strip['unit']}]")})
    layer = strips[0]["layer"]
    hidden = np.asarray(doc["layers"][layer]["h"], dtype=np.float64)[shown]
    units = [{**u, "correlation": f"{u['correlation']:+.3f}"} for u in doc["units"]]
    return {"offset": offset, "rows": len(text), "length": doc.get("length") or len(text_all), "family": doc["family"],
            "num_layers": doc["num_layers"], "hidden_size": doc["hidden_size"], "checkpoint": doc.get("checkpoint"),
            "strips": strips, "heatmaps": _layer_figures(doc, shown, text), "units": units,
            "saturation": _saturation(doc), "influence": _influence(doc),
            "projection": {"uri": data_uri(projection(hidden, list(text), f"layer {layer}: h, first two principal "
                                                                          "components")),
                           "alt": f"The hidden state of layer {layer} projected on its first two principal components"}
            if len(text) >= 3 else None,
            "exam_period": _exam_period(doc)}
