"""Recurrent cell math, written once, and hand-written cells that mirror PyTorch's.

Every formulation, engine and the generator run the recurrences below. A step receives the two
projections ``gi = W_ih x + b_ih`` and ``gh = W_hh h + b_hh``, each (..., G*H) with PyTorch's gate
order, so the same math serves one-hot or embedded input, batched or not, any layer.

The hand-written cells use PyTorch's parameter names, shapes, gate order and initialisation, so
copying weights from ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell`` is a plain copy, and on the CPU
in float32 their outputs are bit-equal to PyTorch's (the operations run in the same order).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

LSTMState = tuple[Tensor, Tensor]
State = Tensor | LSTMState

FAMILIES = ("rnn", "lstm", "gru")
"""The classic families: gates read the input and the hidden state (W_ih x + b_ih and W_hh h + b_hh)."""
MIN_FAMILIES = ("mingru", "minlstm")
"""Feng et al.'s minimal recurrences ("Were RNNs all we needed?", arXiv 2410.01201), log-space versions:
gates read the input alone (W_ih x + b_ih; no W_hh), so a window can run as one parallel scan (``scan.py``)."""
ALL_FAMILIES = FAMILIES + MIN_FAMILIES
NONLINEARITIES = ("tanh", "relu")
# Number of stacked gate blocks in W_ih (and W_hh) for each family.
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "mingru": 2, "minlstm": 3}
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
"""A layer's parameters; the minimal families have no weight_hh or bias_hh (None)."""
TORCH_CELLS: dict[str, type[nn.Module]] = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def check_family(family: str) -> str:
    if family not in ALL_FAMILIES:
        raise ValueError(f"cell: family must be one of {ALL_FAMILIES}, got {family!r}")
    return family


Record = dict[str, Tensor]
"""Where a step leaves its gates when asked (``record=``): the trace reads them; the math is unchanged."""


def rnn_step(gi: Tensor, gh: Tensor, h: Tensor, nonlinearity: str = "tanh", record: Record | None = None) -> Tensor:
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu.

    ``gi``, ``gh``: (..., H). ``h`` is unused; it keeps the signature of the other steps. ``record`` gets
    the pre-activation as ``pre``.
    """
    pre = gh + gi
    if record is not None:
        record["pre"] = pre
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(gi: Tensor, gh: Tensor, state: LSTMState, record: Record | None = None) -> LSTMState:
    """i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of (W_ih x + b_ih + W_hh h + b_hh), in that order;
    c' = f * c + i * g;  h' = o * tanh(c').

    ``gi``, ``gh``: (..., 4H); ``state`` = (h, c), each (..., H). ``record`` gets ``i``, ``f``, ``g``, ``o``.
    """
    _, c = state
    i, f, g, o = (gh + gi).chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    if record is not None:
        record.update(i=i, f=f, g=g, o=o)
    c = f * c + i * g
    return o * torch.tanh(c), c


def gru_step(gi: Tensor, gh: Tensor, h: Tensor, record: Record | None = None) -> Tensor:
    """r = σ(W_ir x + b_ir + W_hr h + b_hr);  z = σ(W_iz x + b_iz + W_hz h + b_hz);
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (h - n) * z + n   (= (1 - z) n + z h).

    ``gi``, ``gh``: (..., 3H); ``h``: (..., H). r is applied after the hidden matmul, as in PyTorch.
    ``record`` gets ``r``, ``z``, ``n``.
    """
    # σ is taken on strided (..., H) views of the full sum, as ATen does in place, so the CPU picks the
    # same (scalar or SIMD) kernel and the result is bit-equal to nn.GRUCell's in batched mode too.
    r, z, _ = (gh + gi).chunk(3, dim=-1)
    r, z = torch.sigmoid(r), torch.sigmoid(z)
    i_n, h_n = gi.chunk(3, dim=-1)[2], gh.chunk(3, dim=-1)[2]
    n = torch.tanh(i_n + h_n * r)
    if record is not None:
        record.update(r=r, z=z, n=n)
    # This operand order is ATen's GRUCell's: forward and autograd's gradients then match it bit for bit.
    return (h - n) * z + n


def g(x: Tensor) -> Tensor:
    """The minimal families' positive activation: x + 1/2 for x >= 0, σ(x) below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed stably: log(relu(x) + 1/2) for x >= 0, -softplus(-x) = log σ(x) below."""
    return torch.where(x >= 0, torch.log(torch.relu(x) + 0.5), -F.softplus(-x))


def mingru_step(gi: Tensor, h: Tensor | None, record: Record | None = None) -> Tensor:
    """h~ = g(W_h x + b_h);  z = σ(W_z x + b_z);  h' = (1 - z) h + z h~, as torch.lerp(h, h~, z).

    ``gi``: (..., 2H), the blocks in the order (h~, z); ``h``: (..., H), or None before the first step
    (h' = h~ z: the reference's first step, ``mingru-pytorch``). ``record`` gets ``h_tilde`` and ``z``.
    """
    candidate, gate = gi.chunk(2, dim=-1)
    h_tilde, z = g(candidate), torch.sigmoid(gate)
    if record is not None:
        record.update(h_tilde=h_tilde, z=z)
    return h_tilde * z if h is None else torch.lerp(h, h_tilde, z)


def minlstm_step(gi: Tensor, h: Tensor | None, record: Record | None = None) -> Tensor:
    """h~ = g(W_h x + b_h);  f, i = σ(W_f x + b_f), σ(W_i x + b_i);  f' = f / (f + i), i' = i / (f + i);
    h' = f' h + i' h~.

    ``gi``: (..., 3H), the blocks in the order (h~, f, i); ``h``: (..., H), or None before the first step
    (h' = i' h~). ``record`` gets ``h_tilde`` and the normalised gates as ``f`` and ``i`` (f', i': what mixes
    h and h~).
    """
    candidate, f, i = gi.chunk(3, dim=-1)
    h_tilde, f, i = g(candidate), torch.sigmoid(f), torch.sigmoid(i)
    f_norm, i_norm = f / (f + i), i / (f + i)
    if record is not None:
        record.update(h_tilde=h_tilde, f=f_norm, i=i_norm)
    return h_tilde * i_norm if h is None else h * f_norm + h_tilde * i_norm


GATE_NAMES = {"rnn": ("pre",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "mingru": ("h_tilde", "z"),
              "minlstm": ("h_tilde", "f", "i")}
"""What each family's step records: the RNN's pre-activation, the LSTM's and GRU's gates in torch's order, the
minimal families' candidate and gates (the minLSTM's normalised f' and i')."""


def cell_step(family: str, gi: Tensor, gh: Tensor | None, state: State | None, nonlinearity: str = "tanh",
              record: Record | None = None) -> State:
    """One step of ``family``'s recurrence from the two projections (the minimal families have no ``gh``, and
    take a state of None before their first step); the only branch on the family."""
    if family == "lstm":
        return lstm_step(gi, gh, state, record)
    if family == "gru":
        return gru_step(gi, gh, state, record)
    if family == "mingru":
        return mingru_step(gi, state, record)
    if family == "minlstm":
        return minlstm_step(gi, state, record)
    return rnn_step(gi, gh, state, nonlinearity, record)


# ---- state helpers: an LSTM's state is a (h, c) pair, the others' a single tensor ----

def hidden_of(state: State) -> Tensor:
    """The hidden output h of a state."""
    return state[0] if isinstance(state, tuple) else state


def map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    """Apply ``fn`` to every tensor of a state."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def zero_state(family: str, shape: tuple[int, ...], like: Tensor) -> State:
    """A zero state of ``shape`` (dtype and device of ``like``): a pair for the LSTM."""
    zeros = like.new_zeros(shape)
    return (zeros, like.new_zeros(shape)) if family == "lstm" else zeros


def start_state(family: str, shape: tuple[int, ...], like: Tensor) -> State | None:
    """The state before the first step: a minimal family's is none at all (its first step is its reference's,
    h_0 = b_0, not a step from zeros); the others' :func:`zero_state`."""
    return None if family in MIN_FAMILIES else zero_state(family, shape, like)


def stack_states(states: list[State]) -> State:
    """Per-layer states -> one state with a leading layer dimension, as torch's modules return."""
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states))
    return torch.stack(states)


def detach_state(state: State | None) -> State | None:
    """Cut the graph between truncated-BPTT windows."""
    return None if state is None else map_state(Tensor.detach, state)


# ---- the hand-written cells ----

class ScratchCell(nn.Module):
    """A recurrent cell written by hand: ``forward(x, state=None) -> state``, like ``nn.*Cell``.

    Parameters mirror PyTorch's: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and
    ``bias_hh`` (G*H,), with G = 1 (rnn), 4 (lstm: i,f,g,o) or 3 (gru: r,z,n), initialised
    U(-1/sqrt(H), 1/sqrt(H)) in that order, so a seed draws the same weights as ``nn.*Cell``. The minimal
    families have ``weight_ih`` and ``bias_ih`` only (G = 2, mingru: h~,z; 3, minlstm: h~,f,i; the
    reference's block order), ``weight_hh`` and ``bias_hh`` None; the same names serve their parallel form.
    """

    def __init__(self, family: str, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh") -> None:
        super().__init__()
        self._configure(family, input_size, hidden_size, bias, nonlinearity)
        rows, recurrent = GATES[family] * hidden_size, family not in MIN_FAMILIES
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size)) if recurrent else None
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias and recurrent else None
        self.reset_parameters()

    def _configure(self, family: str, input_size: int, hidden_size: int, bias: bool,
                   nonlinearity: str) -> None:
        check_family(family)
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"cell: nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"cell: input_size and hidden_size must be >= 1, got {input_size}, {hidden_size}")
        self.family, self.input_size, self.hidden_size = family, input_size, hidden_size
        self.bias, self.nonlinearity = bias, nonlinearity

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, input: Tensor, state: State | None = None, record: Record | None = None) -> State:
        """``input`` (I,) or (B, I); ``state`` (H,) / (B, H), a pair of them for the LSTM; ``record``
        (optional) gets this step's gates (:data:`GATE_NAMES`). A minimal family's first step (state None)
        is its reference's, not a step from zeros."""
        gi = F.linear(input, self.weight_ih, self.bias_ih)  # (..., G*H)
        if self.weight_hh is None:  # a minimal family: the gates read the input alone
            return cell_step(self.family, gi, None, state, record=record)
        if state is None:
            state = zero_state(self.family, (*input.shape[:-1], self.hidden_size), input)
        gh = F.linear(hidden_of(state), self.weight_hh, self.bias_hh)  # (..., G*H)
        return cell_step(self.family, gi, gh, state, self.nonlinearity, record)

    @torch.no_grad()
    def copy_from(self, cell: nn.Module) -> ScratchCell:
        """Copy ``weight_ih, weight_hh, bias_ih, bias_hh`` from a matching ``nn.*Cell`` (or cell)."""
        for name in WEIGHT_NAMES:
            ours, theirs = getattr(self, name), getattr(cell, name)
            if (ours is None) != (theirs is None) or (ours is not None and ours.shape != theirs.shape):
                raise ValueError(f"cell: cannot copy {name}: shapes {shape_of(theirs)} -> {shape_of(ours)}")
            if ours is not None:
                ours.copy_(theirs)
        return self

    def extra_repr(self) -> str:
        extra = f", nonlinearity={self.nonlinearity!r}" if self.family == "rnn" else ""
        return f"{self.family}, {self.input_size}, {self.hidden_size}{extra}"


class TwoLinearCell(ScratchCell):
    """The exam's formulation of a hand-written cell: ``i2h = Linear(I, G*H)``, ``h2h = Linear(H, G*H)``.

    ``weight_ih`` etc. are views of the two Linear layers, so the same step (and ``copy_from``) apply.
    """

    def __init__(self, family: str, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh") -> None:
        nn.Module.__init__(self)
        self._configure(family, input_size, hidden_size, bias, nonlinearity)
        rows = GATES[family] * hidden_size
        self.i2h = nn.Linear(input_size, rows, bias=bias)
        self.h2h = nn.Linear(hidden_size, rows, bias=bias)
        self.reset_parameters()

    weight_ih = property(lambda self: self.i2h.weight)
    weight_hh = property(lambda self: self.h2h.weight)
    bias_ih = property(lambda self: self.i2h.bias)
    bias_hh = property(lambda self: self.h2h.bias)


CELL_IMPLS = ("torch", "scratch", "two-linear")


def make_cell(impl: str, family: str, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> nn.Module:
    """A cell written by ``impl``: ``torch`` (nn.RNNCell/LSTMCell/GRUCell), ``scratch`` (weight_ih, ...)
    or ``two-linear`` (the exam's i2h, h2h). The minimal families are ``scratch`` only."""
    check_family(family)
    if family in MIN_FAMILIES and impl != "scratch":
        raise ValueError(f"cell: {family} has no torch cell and no i2h/h2h form; impl must be 'scratch', got {impl!r}")
    if impl == "torch":
        extra = {"nonlinearity": nonlinearity} if family == "rnn" else {}
        return TORCH_CELLS[family](input_size, hidden_size, **extra)
    if impl == "scratch":
        return ScratchCell(family, input_size, hidden_size, nonlinearity=nonlinearity)
    if impl == "two-linear":
        return TwoLinearCell(family, input_size, hidden_size, nonlinearity=nonlinearity)
    raise ValueError(f"cell: impl must be one of {CELL_IMPLS}, got {impl!r}")


def shape_of(t: Tensor | None) -> tuple[int, ...] | None:
    """A parameter's shape, or None where a cell has no such parameter (for errors)."""
    return None if t is None else tuple(t.shape)
