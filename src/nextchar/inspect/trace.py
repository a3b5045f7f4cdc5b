"""What happens inside a model over a text: for every layer and position the hidden state h, the LSTM's
cell state c and the gates (i, f, g, o; r, z, n; the RNN's pre-activation), and the next-character
probabilities.

Every formulation's gates come from its hand-written twin (``kind="scratch"``, the autograd engine, the
weights copied), the one place the cell math is written (``cells.py``):

- hand-written and built-in-cell models are traced step by step through the twin, in the same order as
  the model's own loop, so the trace is bit-equal to the model's forward on the CPU in float32 (these
  models' own forward is such a loop, so tracing costs about what predicting does);
- built-in sequence modules (``nn.RNN/LSTM/GRU``, other kernels: equal to round-off) run at their own speed:
  each layer's h over a chunk comes from a one-layer module with that layer's weights, then the twin's
  cell computes every position's gates at once from (x_t, h_{t-1}) — the gates read nothing else — and the
  LSTM's c follows from them (c_t = f_t c_{t-1} + i_t g_t, an elementwise scan);
- a minimal family's parallel form likewise: each layer's h by its scan (``scan.py``), the gates (h~ and z;
  h~, f' and i') from the twin's cell at once, from the inputs alone.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..cells import GATE_NAMES, MIN_FAMILIES, WEIGHT_NAMES, State, hidden_of, map_state, start_state
from ..model import SEQUENCE_MODULES, CharModel, copy_weights
from ..scan import scan_unroll
from ..vocab import Vocab

CHUNK = 2048
"""Characters traced per pass over a long text; the state is carried from chunk to chunk. Smaller than
predict's: a chunk's trace holds every gate, and at hidden 256 chunks of 4096 fragmented the heap into
~200 MB more peak memory over 1 MB of text, for no gain in speed (measured with bench/inspect_cost.py)."""


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
    layers = _one_layer_modules(model, twin) if model.config.kind == "module" else None
    carried: list[State | None] = [None] * len(twin.core.cells)
    buffer = ""
    for piece in pieces:
        buffer += piece
        while len(buffer) >= chunk:
            yield _trace_piece(twin, layers, vocab, buffer[:chunk], carried)
            buffer = buffer[chunk:]
    if buffer:
        yield _trace_piece(twin, layers, vocab, buffer, carried)


def trace(model: CharModel, vocab: Vocab, text: str, chunk: int = CHUNK) -> Trace:
    """Every layer's h (and c) and gates, and the probabilities, at every position of ``text``."""
    if not text:
        raise ValueError("inspect: the text must have at least one character")
    return concat(list(trace_chunks(model, vocab, [text], chunk)))


def concat(parts: list[Trace]) -> Trace:
    """Consecutive pieces of a trace as one."""
    layers = [LayerTrace(torch.cat([p.layers[k].h for p in parts]),
                         None if parts[0].layers[k].c is None else torch.cat([p.layers[k].c for p in parts]),
                         {g: torch.cat([p.layers[k].gates[g] for p in parts]) for g in parts[0].layers[k].gates})
              for k in range(len(parts[0].layers))]
    return Trace("".join(p.text for p in parts), parts[0].vocab, layers, torch.cat([p.probs for p in parts]))


def _one_layer_modules(model: CharModel, twin: CharModel) -> list:
    """A sequence module's layers as one-layer modules with the same weights (its h per layer); a minimal
    family's, its scan over each of the twin's cells (the same weights)."""
    config, weight = model.config, model.head.weight
    if config.family in MIN_FAMILIES:
        return [functools.partial(_scan_layer, cell) for cell in twin.core.cells]
    extra = {"nonlinearity": config.nonlinearity} if config.family == "rnn" else {}
    modules = []
    for k, weights in enumerate(model.layer_weights()):
        size = config.input_size if k == 0 else config.hidden_size
        with torch.random.fork_rng(devices=[]):
            layer = SEQUENCE_MODULES[config.family](size, config.hidden_size, **extra)
        layer = layer.to(device=weight.device, dtype=weight.dtype)
        for name in WEIGHT_NAMES:
            getattr(layer, f"{name}_l0").copy_(weights[name])
        modules.append(layer.eval())
    return modules


def _trace_piece(twin: CharModel, modules: list | None, vocab: Vocab, text: str, carried: list) -> Trace:
    """One chunk of the trace (``carried``, each layer's state, is updated): step by step through the twin,
    or for a sequence module through its one-layer ``modules``."""
    missing = vocab.unknown(text)
    if missing:
        raise ValueError(f"inspect: characters {missing[:20]!r} are not in the model's vocabulary "
                         f"({len(vocab)} characters)")
    family, device = twin.config.family, twin.head.weight.device
    output = twin.encode(vocab.encode(text).to(device))  # (T, I)
    layers = []
    for k, cell in enumerate(twin.core.cells):
        state = carried[k] if carried[k] is not None else start_state(family, (cell.hidden_size,), output)
        trace_layer = _layer_by_steps if modules is None else _layer_at_once
        layer, carried[k] = trace_layer(cell, modules and modules[k], output, state, family)
        output = layer.h  # (T, H): the next layer's input (no dropout: the model is evaluated)
        layers.append(layer)
    probs = twin.head(output).softmax(-1)  # (T, V)
    cpu = [LayerTrace(layer.h.cpu(), None if layer.c is None else layer.c.cpu(),
                      {name: gate.cpu() for name, gate in layer.gates.items()}) for layer in layers]
    return Trace(text, vocab, cpu, probs.cpu())


def _layer_by_steps(cell, module, inputs: Tensor, state: State, family: str) -> tuple[LayerTrace, State]:
    """The model's own loop over ``inputs`` (T, I), batched as RecurrentCore batches an unbatched input
    ((1, I) per step), each step's gates recorded."""
    hs, cs, gates = [], [], {name: [] for name in GATE_NAMES[family]}
    state = _batched(state)
    for x_t in inputs.unsqueeze(1):  # (1, I)
        record: dict[str, Tensor] = {}
        state = cell(x_t, state, record=record)
        hs.append(hidden_of(state))
        if family == "lstm":
            cs.append(state[1])
        for name in gates:
            gates[name].append(record[name])
    layer = LayerTrace(torch.cat(hs), torch.cat(cs) if cs else None,
                       {name: torch.cat(values) for name, values in gates.items()})
    return layer, _unbatched(state)


def _batched(state: State | None) -> State | None:
    return None if state is None else map_state(lambda s: s.unsqueeze(0), state)


def _unbatched(state: State | None) -> State | None:
    return None if state is None else map_state(lambda s: s[0], state)


def _scan_layer(cell, inputs: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
    """A minimal family's layer by its parallel scan, shaped as a one-layer module's answer: inputs (T, I),
    state (1, H) or None -> h (T, H), the last state (1, H)."""
    hs, last = scan_unroll(cell, inputs.unsqueeze(1), state)  # (T, 1, H), (1, H)
    return hs[:, 0], last


def _layer_at_once(cell, module, inputs: Tensor, state: State, family: str) -> tuple[LayerTrace, State]:
    """h from the one-layer sequence ``module``, the gates of all T positions in one call of the twin's cell."""
    h, new_state = module(inputs, _batched(state))  # h (T, H); state (1, H), a pair for the LSTM
    record: dict[str, Tensor] = {}
    if family in MIN_FAMILIES:  # the gates read the inputs alone
        cell(inputs, None, record=record)
    else:
        h_before = torch.cat([hidden_of(state).unsqueeze(0), h[:-1]])  # (T, H): h_{t-1} at each position
        cell(inputs, (h_before, torch.zeros_like(h_before)) if family == "lstm" else h_before, record=record)
    c = _cell_states(record["f"], record["i"] * record["g"], state[1]) if family == "lstm" else None
    layer = LayerTrace(h, c, {name: record[name] for name in GATE_NAMES[family]})
    return layer, _unbatched(new_state)


def _cell_states(f: Tensor, ig: Tensor, c0: Tensor) -> Tensor:
    """c_t = f_t c_{t-1} + i_t g_t over (T, H), from c0 (H,): compiled on the CPU, a loop elsewhere."""
    if f.device.type == "cpu":
        from ..fused.kernels import lstm_cell_scan

        c = torch.empty_like(f)
        lstm_cell_scan(f.numpy(), ig.numpy(), c0.contiguous().numpy(), c.numpy())
        return c
    c, previous = torch.empty_like(f), c0
    for t in range(len(f)):
        previous = c[t] = f[t] * previous + ig[t]
    return c
