"""Character models: an input encoding, a recurrent core, a Linear head to vocabulary logits.

Every model answers ``forward(x, state=None) -> (logits, state)``, whatever its formulation:
``x`` is time-major, either indices (T,) / (T, B) or encoded features (T, I) / (T, B, I);
``logits`` are (T, V) / (T, B, V); ``state`` is what ``nn.RNN/LSTM/GRU`` return: (L, H) or
(L, B, H), a pair of them for the LSTM.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .cells import MIN_FAMILIES, WEIGHT_NAMES, State, make_cell, map_state, shape_of, stack_states, start_state
from .config import ModelConfig
from .engines import get_unroll
from .scan import scan_unroll

SEQUENCE_MODULES: dict[str, type[nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class ModuleCore(nn.Module):
    """The recurrence as PyTorch's sequence module ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        extra = {"nonlinearity": config.nonlinearity} if config.family == "rnn" else {}
        between_layers = config.dropout if config.num_layers > 1 else 0.0
        self.rnn = SEQUENCE_MODULES[config.family](
            config.input_size, config.hidden_size, num_layers=config.num_layers, dropout=between_layers, **extra
        )

    def forward(self, input: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.rnn(input, state)

    def layer_weights(self) -> list[dict[str, Tensor]]:
        return [{name: getattr(self.rnn, f"{name}_l{k}") for name in WEIGHT_NAMES}
                for k in range(self.rnn.num_layers)]


class RecurrentCore(nn.Module):
    """The recurrence as one cell per layer (``nn.*Cell`` or hand-written), unrolled by an engine.

    Stacking, dropout between layers, the zero state and unbatched input are handled here, once; the
    engine (``engines.py``) only unrolls one layer over time. A minimal family (mingru, minlstm) is always
    this core: its parameters are its cells' (one checkpoint loads into either form), unrolled by its
    parallel scan (kind module, ``scan.scan_unroll``) or by an engine's loop over the cell (kind scratch);
    it starts from no state (None), as its reference does, rather than from zeros.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        # cell_style names the hand-written cell's parameters: torch's names (ScratchCell) or i2h/h2h.
        impl = "torch" if config.kind == "cell" else "scratch" if config.cell_style == "torch" else "two-linear"
        self.family, self.dropout, self.engine = config.family, config.dropout, config.engine
        minimal = config.family in MIN_FAMILIES  # their kinds are module (the scan) and scratch: impl "scratch"
        self.unroll = scan_unroll if minimal and config.kind == "module" else get_unroll(config.engine)
        self.cells = nn.ModuleList(
            make_cell(impl, config.family, config.input_size if k == 0 else config.hidden_size,
                      config.hidden_size, config.nonlinearity)
            for k in range(config.num_layers)
        )

    def forward(self, input: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``input`` (T, [B,] I); ``state`` (L, [B,] H), a pair of them for the LSTM, or None for zeros."""
        unbatched = input.dim() == 2
        if unbatched:  # (T, I) -> (T, 1, I); state (L, H) -> (L, 1, H)
            input = input.unsqueeze(1)
            state = None if state is None else map_state(lambda s: s.unsqueeze(1), state)
        output, last_states = input, []  # output: (T, B, I), then (T, B, H) after each layer
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0:
                output = F.dropout(output, self.dropout, self.training)
            layer_state = (start_state(self.family, (output.shape[1], cell.hidden_size), output)
                           if state is None else map_state(lambda s: s[k], state))  # noqa: B023 - used at once
            output, layer_state = self.unroll(cell, output, layer_state)
            last_states.append(layer_state)
        state = stack_states(last_states)
        if unbatched:
            output, state = output.squeeze(1), map_state(lambda s: s.squeeze(1), state)
        return output, state

    def layer_weights(self) -> list[dict[str, Tensor]]:
        return [{name: getattr(cell, name) for name in WEIGHT_NAMES} for cell in self.cells]


def build_core(config: ModelConfig) -> nn.Module:
    return ModuleCore(config) if config.kind == "module" and config.family not in MIN_FAMILIES else \
        RecurrentCore(config)


class CharModel(nn.Module):
    """Next-character model: one-hot or embedding input -> recurrent core -> ``Linear(H, V)`` head.

    Construction order (core, then head) matches the exam's, so under one seed ``CharModel`` draws
    the same initial weights as the exam's ``nn.RNNCell(7, 8)`` followed by ``nn.Linear(8, 7)``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.core = build_core(config)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.embedding = (nn.Embedding(config.vocab_size, config.embedding_dim)
                          if config.embedding_dim else None)

    def encode(self, x: Tensor) -> Tensor:
        """Indices (T, [B]) -> features (T, [B,] I); float features pass through unchanged."""
        if x.is_floating_point():
            if x.shape[-1] != self.config.input_size:
                raise ValueError(f"model: input features must have size {self.config.input_size} "
                                 f"in the last dimension, got shape {tuple(x.shape)}")
            return x
        if self.embedding is not None:
            return self.embedding(x)
        return F.one_hot(x, self.config.vocab_size).to(self.head.weight.dtype)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        output, state = self.core(self.encode(x), state)  # (T, [B,] H)
        if self.config.dropout > 0:
            output = F.dropout(output, self.config.dropout, self.training)
        return self.head(output), state

    def layer_weights(self) -> list[dict[str, Tensor]]:
        """Per layer, ``{'weight_ih': ..., 'weight_hh': ..., 'bias_ih': ..., 'bias_hh': ...}``."""
        return self.core.layer_weights()


@torch.no_grad()
def copy_weights(source: CharModel, target: CharModel) -> CharModel:
    """Give ``target`` exactly ``source``'s weights, whatever the two formulations are."""
    src_layers, dst_layers = source.layer_weights(), target.layer_weights()
    if len(src_layers) != len(dst_layers):
        raise ValueError(f"model: cannot copy {len(src_layers)} layers into {len(dst_layers)}")
    pairs = [(f"layer {k} {name}", src[name], dst[name])
             for k, (src, dst) in enumerate(zip(src_layers, dst_layers)) for name in WEIGHT_NAMES
             if src[name] is not None or dst[name] is not None]
    pairs += [(f"head {name}", getattr(source.head, name), getattr(target.head, name)) for name in ("weight", "bias")]
    if (source.embedding is None) != (target.embedding is None):
        raise ValueError("model: cannot copy between a one-hot and an embedding model")
    if source.embedding is not None:
        pairs.append(("embedding", source.embedding.weight, target.embedding.weight))
    for what, src, dst in pairs:
        if src is None or dst is None or src.shape != dst.shape:
            raise ValueError(f"model: cannot copy {what}: shape {shape_of(src)} into {shape_of(dst)}")
        dst.copy_(src)
    return target
