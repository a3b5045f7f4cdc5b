"""Typed settings of a model; ``asdict(config)`` goes into every checkpoint."""
from __future__ import annotations

from dataclasses import dataclass

from .cells import FAMILIES, NONLINEARITIES

# How the recurrence is run: the built-in sequence module (nn.RNN/LSTM/GRU), a Python loop over the
# built-in cell (nn.RNNCell/...), or a loop over the hand-written cell.
KINDS = ("module", "cell", "scratch")
CELL_STYLES = ("torch", "two-linear")
ENGINES = ("autograd", "fused")
FORMULATIONS = tuple(f"{f}{'' if k == 'module' else '-' + k}" for f in FAMILIES for k in KINDS)


def parse_formulation(name: str) -> tuple[str, str]:
    """``'lstm-cell'`` -> ``('lstm', 'cell')``; ``'gru'`` -> ``('gru', 'module')``."""
    family, _, kind = name.partition("-")
    kind = kind or "module"
    if family not in FAMILIES or kind not in KINDS:
        raise ValueError(f"model: formulation must be one of {FORMULATIONS}, got {name!r}")
    return family, kind


@dataclass
class ModelConfig:
    vocab_size: int
    """Number of characters; the head's output size (and the one-hot input size)."""
    family: str = "lstm"
    """Recurrent cell: rnn, lstm or gru."""
    kind: str = "module"
    """module (nn.RNN/LSTM/GRU), cell (loop over nn.*Cell) or scratch (loop over the hand-written cell)."""
    hidden_size: int = 128
    """Width of the hidden state h (and c for the LSTM)."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    dropout: float = 0.0
    """Dropout on each layer's output (between layers and before the head); 0 disables it."""
    nonlinearity: str = "tanh"
    """The plain RNN's activation: tanh or relu."""
    embedding_dim: int | None = None
    """Learned embedding of this size as input; None feeds one-hot vectors."""
    cell_style: str = "torch"
    """scratch only: parameters as weight_ih/... (torch) or as the exam's i2h/h2h Linear layers (two-linear)."""
    engine: str = "autograd"
    """scratch only: autograd (step by step) or fused (compiled forward + backward-through-time)."""

    def __post_init__(self) -> None:
        checks = [
            (self.family in FAMILIES, f"family must be one of {FAMILIES}, got {self.family!r}"),
            (self.kind in KINDS, f"kind must be one of {KINDS}, got {self.kind!r}"),
            (self.nonlinearity in NONLINEARITIES,
             f"nonlinearity must be one of {NONLINEARITIES}, got {self.nonlinearity!r}"),
            (self.cell_style in CELL_STYLES, f"cell_style must be one of {CELL_STYLES}, got {self.cell_style!r}"),
            (self.engine in ENGINES, f"engine must be one of {ENGINES}, got {self.engine!r}"),
            (self.vocab_size >= 1, f"vocab_size must be >= 1, got {self.vocab_size}"),
            (self.hidden_size >= 1, f"hidden_size must be >= 1, got {self.hidden_size}"),
            (self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.embedding_dim is None or self.embedding_dim >= 1,
             f"embedding_dim must be None (one-hot) or >= 1, got {self.embedding_dim}"),
            (self.kind == "scratch" or self.cell_style == "torch",
             f"cell_style {self.cell_style!r} needs kind 'scratch', got kind {self.kind!r}"),
            (self.kind == "scratch" or self.engine == "autograd",
             f"engine {self.engine!r} needs kind 'scratch', got kind {self.kind!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"model: {message}")

    @property
    def formulation(self) -> str:
        return self.family if self.kind == "module" else f"{self.family}-{self.kind}"

    @property
    def input_size(self) -> int:
        return self.embedding_dim or self.vocab_size
