"""What happens inside a model over a text: for every layer and position the hidden state h, the LSTM's
cell state c and the gates (i, f, g, o; r, z, n; the RNN's pre-activation), and the next-character
probabilities.

Any formulation is traced through its hand-written twin (``kind="scratch"``, the autograd engine, the
weights copied): the twin runs the same cell math (``cells.py``) in the same order as the model's own loop,
so for the hand-written and built-in-cell formulations the trace is bit-equal to the model's forward on
the CPU in float32, and for the built-in sequence modules (other kernels) equal to round-off.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..cells import GATE_NAMES, State, hidden_of, zero_state
from ..model import CharModel, copy_weights
from ..vocab import Vocab

CHUNK = 4096
"""Characters traced per pass over a long text; the state is carried from chunk to chunk."""


@dataclass
class LayerTrace:
    h: Tensor
    """(T, H): the hidden state after each position."""
    c: Tensor | None
    """(T, H): the LSTM's cell state after each position; None for the other families."""
    gates: dict[str, Tensor] = field(default_factory=dict)
    """name -> (T, H), in ``cells.GATE_NAMES`` order: i, f, g, o (lstm); r, z, n (gru); pre (rnn)."""


@dataclass
class Trace:
    text: str
    vocab: Vocab
    layers: list[LayerTrace]
    probs: Tensor
    """(T, V): the next-character probabilities after each position."""


def hand_written_twin(model: CharModel) -> CharModel:
    """``model`` itself if it is a hand-written cell on the autograd engine, else a hand-written copy of it
    (same weights, device and dtype); the global random state is left as it was."""
    config = model.config
    if config.kind == "scratch" and config.engine == "autograd":
        return model
    twin_config = dataclasses.replace(config, kind="scratch", engine="autograd",
                                      cell_style=config.cell_style if config.kind == "scratch" else "torch")
    weight = model.head.weight
    with torch.random.fork_rng(devices=[]):  # building the twin draws weights we overwrite at once
        twin = CharModel(twin_config).to(device=weight.device, dtype=weight.dtype)
    return copy_weights(model, twin)


@torch.no_grad()
def trace_chunks(model: CharModel, vocab: Vocab, pieces: Iterable[str], chunk: int = CHUNK) -> Iterator[Trace]:
    """One :class:`Trace` per ``chunk`` characters of the text ``pieces`` make, the state carried between
    them, so a text of any length is traced in bounded memory."""
    twin = hand_written_twin(model)
    twin.eval()
    family, device = twin.config.family, twin.head.weight.device
    carried: list[State | None] = [None] * len(twin.core.cells)
    buffer = ""
    for piece in pieces:
        buffer += piece
        while len(buffer) >= chunk:
            yield _trace_piece(twin, vocab, buffer[:chunk], carried, family, device)
            buffer = buffer[chunk:]
    if buffer:
        yield _trace_piece(twin, vocab, buffer, carried, family, device)


def trace(model: CharModel, vocab: Vocab, text: str, chunk: int = CHUNK) -> Trace:
    """Every layer's h (and c) and gates, and the probabilities, at every position of ``text``."""
    if not text:
        raise ValueError("inspect: the text must have at least one character")
    parts = list(trace_chunks(model, vocab, [text], chunk))
    layers = [LayerTrace(torch.cat([p.layers[k].h for p in parts]),
                         None if parts[0].layers[k].c is None else torch.cat([p.layers[k].c for p in parts]),
                         {g: torch.cat([p.layers[k].gates[g] for p in parts]) for g in parts[0].layers[k].gates})
              for k in range(len(parts[0].layers))]
    return Trace(text, vocab, layers, torch.cat([p.probs for p in parts]))


def _trace_piece(twin: CharModel, vocab: Vocab, text: str, carried: list, family: str, device) -> Trace:
    """The model's own unbatched forward, step by step, with the gates recorded (``carried`` is updated)."""
    missing = vocab.unknown(text)
    if missing:
        raise ValueError(f"inspect: characters {missing[:20]!r} are not in the model's vocabulary "
                         f"({len(vocab)} characters)")
    output = twin.encode(vocab.encode(text).to(device)).unsqueeze(1)  # (T, 1, I): as RecurrentCore batches it
    layers = []
    for k, cell in enumerate(twin.core.cells):
        state = carried[k] if carried[k] is not None else zero_state(family, (1, cell.hidden_size), output)
        hs, cs, gates = [], [], {name: [] for name in GATE_NAMES[family]}
        for x_t in output:  # (1, I)
            record: dict[str, Tensor] = {}
            state = cell(x_t, state, record=record)
            hs.append(hidden_of(state))
            if family == "lstm":
                cs.append(state[1])
            for name in gates:
                gates[name].append(record[name])
        carried[k] = state
        output = torch.stack(hs)  # (T, 1, H): the next layer's input (no dropout: the model is evaluated)
        layers.append(LayerTrace(output[:, 0].cpu(), torch.stack(cs)[:, 0].cpu() if cs else None,
                                 {name: torch.stack(values)[:, 0].cpu() for name, values in gates.items()}))
    probs = twin.head(output.squeeze(1)).softmax(-1)  # (T, V)
    return Trace(text, vocab, layers, probs.cpu())
