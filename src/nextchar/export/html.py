"""``nextchar export CKPT --html FILE``: one self-contained page that runs the model in the browser.

The page holds the weights (float32, base64) and a small JavaScript forward pass of the same cell math as
``cells.py`` (rnn tanh/relu, lstm, gru, and mingru and minlstm's sequential cell; any number of layers; one-hot
or embedding input), computed in
float64 from the float32 weights, so its probabilities equal torch's to ~1e-6. Sampling uses a seeded
PRNG (mulberry32: integer arithmetic only), so a seed gives the same text in every browser. For tests
and tools it exposes ``window.nextchar = {vocab, probabilities(prompt), sampling(prompt, {temperature, topK,
topP}), generate(prompt, length, {temperature, topK, topP, seed, greedy})}``.
"""
from __future__ import annotations

import base64
import json

import torch

from ..cells import WEIGHT_NAMES
from ..model import CharModel
from ..vocab import Vocab


def _base64(tensor: torch.Tensor) -> str:
    """A tensor's values as little-endian float32 bytes, row-major, in base64."""
    return base64.b64encode(tensor.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4").tobytes()
                            ).decode("ascii")


def model_payload(model: CharModel, vocab: Vocab) -> dict:
    """What the page's JavaScript reads: the configuration and every weight (base64 float32)."""
    config = model.config
    layers = []
    for k, weights in enumerate(model.layer_weights()):
        size = config.input_size if k == 0 else config.hidden_size
        layer = {"input_size": size}
        for name in WEIGHT_NAMES:
            tensor = weights[name]
            if tensor is None and name.endswith("_hh") and weights["weight_hh"] is None:
                layer[name] = None  # a minimal family: the gates read the input alone
                continue
            if tensor is None:  # a cell without biases: zeros, the same math
                rows = weights["weight_ih"].shape[0]
                tensor = torch.zeros(rows)
            layer[name] = _base64(tensor)
        layers.append(layer)
    return {"family": config.family, "nonlinearity": config.nonlinearity, "num_layers": config.num_layers,
            "hidden_size": config.hidden_size, "vocab": list(vocab.chars),
            "embedding": None if model.embedding is None else _base64(model.embedding.weight),
            "embedding_dim": config.embedding_dim, "layers": layers,
            "head_weight": _base64(model.head.weight), "head_bias": _base64(model.head.bias)}


def script_json(payload: dict) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>``, no ``<!--``, whatever the vocabulary holds."""
    return json.dumps(payload, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def export_html(model: CharModel, vocab: Vocab, title: str) -> str:
    """The page's HTML for ``model``."""
    from ..report.environment import environment

    env = environment("export")
    config = model.config
    about = (f"{config.family}{' (' + config.nonlinearity + ')' if config.family == 'rnn' else ''}, "
             f"{config.num_layers} layer{'s' if config.num_layers > 1 else ''}, hidden {config.hidden_size}, "
             f"{len(vocab)} characters, "
             f"{'embedding ' + str(config.embedding_dim) if config.embedding_dim else 'one-hot'}")
    return env.get_template("page.html.j2").render(title=title, about=about, hidden_size=config.hidden_size,
                                                   model_json=script_json(model_payload(model, vocab)))
