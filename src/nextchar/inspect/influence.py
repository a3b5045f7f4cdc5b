"""How strongly each earlier character drives a prediction (saliency, as in distill.pub's "Memorization in
RNNs"): for a position t, ``|d log p(x_{t+1}) / d input_{t-k}|`` for k = 0..K, the L2 norm of the gradient
of the log probability of the next character with respect to the model's input vector k steps back (the
one-hot vector, or the embedding vector for an embedding model).

The gradient flows through the bit-equal hand-written twin (``trace.hand_written_twin``) over the window
t-K..t, started from the state the model had just before the window (read off a trace), so it is exact:
the inputs outside the window cannot move the state the window starts from. x_{t+1} is the text's next
character, or at the text's last position the model's own most likely guess.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells import State, map_state, stack_states, zero_state
from ..model import CharModel
from ..vocab import Vocab
from .trace import Trace, hand_written_twin

HORIZON = 32
"""K: the farthest distance whose influence is measured by default."""
POSITIONS = 64
"""Positions averaged for the memory-horizon curve (spread evenly over the text)."""

StateAt = Callable[[int], list[State] | None]
"""Position p -> each layer's state (h, or (h, c)) after position p, each (H,); None for p = -1 (zeros)."""


@dataclass
class Influence:
    position: int
    by_distance: list[float]
    """(K+1,): the influence of input t-k on the prediction at t = position; 0 where t-k < 0."""
    mean_by_distance: list[float]
    """(K+1,): the same averaged over ``positions`` (each distance over the positions that reach it)."""
    positions: list[int]
    target: str
    """The character whose log probability is differentiated at ``position``."""


def influence_positions(length: int, horizon: int = HORIZON, count: int = POSITIONS) -> list[int]:
    """``count`` positions spread evenly over a text of ``length``, from ``horizon`` on where it is long
    enough (so every distance 0..K is measured at each)."""
    first = horizon if length > horizon else 0
    span = length - first
    count = min(count, span)
    return [first + (i * span) // count for i in range(count)]


def gradient_norms(model: CharModel, vocab: Vocab, text: str, positions: Sequence[int], state_at: StateAt,
                   horizon: int = HORIZON) -> tuple[Tensor, list[str]]:
    """(len(positions), K+1): ``|d log p(x_{t+1}) / d input_{t-k}|`` for each position t and distance k, and
    the target character at each. Positions with a full window are one batched backward pass."""
    twin = hand_written_twin(model).eval()
    norms = torch.zeros(len(positions), horizon + 1, dtype=torch.float64)
    targets = [""] * len(positions)
    groups: dict[int, list[int]] = {}  # window length -> indices into positions
    for index, t in enumerate(positions):
        groups.setdefault(min(t, horizon) + 1, []).append(index)
    for length, indices in groups.items():
        ends = [positions[i] for i in indices]
        grads, chars = _window_gradients(twin, vocab, text, ends, length, state_at)  # (W, B, I)
        per_step = grads.norm(dim=-1).flip(0).T  # (B, W): distance 0 first
        norms[indices, :length] = per_step.double().cpu()
        for i, char in zip(indices, chars):
            targets[i] = char
    return norms, targets


def _window_gradients(twin: CharModel, vocab: Vocab, text: str, ends: list[int], length: int,
                      state_at: StateAt) -> tuple[Tensor, list[str]]:
    device = twin.head.weight.device
    windows = torch.stack([vocab.encode(text[t - length + 1:t + 1]) for t in ends], dim=1)  # (W, B)
    with torch.no_grad():
        inputs = twin.encode(windows.to(device))  # (W, B, I)
    inputs.requires_grad_(True)
    zeros = [zero_state(twin.config.family, (cell.hidden_size,), inputs) for cell in twin.core.cells]
    before = [state_at(t - length) or zeros for t in ends]  # per window, each layer's state before it
    per_layer = [stack_states([states[k] for states in before]) for k in range(len(zeros))]  # (B, H) each
    state = map_state(lambda s: s.to(device=device, dtype=inputs.dtype), stack_states(per_layer))  # (L, B, H)
    with torch.enable_grad():
        output, _ = twin.core(inputs, state)
        log_probs = twin.head(output[-1]).log_softmax(-1)  # (B, V)
        targets = [vocab.encode(text[t + 1])[0].item() if t + 1 < len(text) else None for t in ends]
        chosen = torch.tensor([log_probs[b].argmax().item() if target is None else target
                               for b, target in enumerate(targets)], device=device)
        picked = log_probs.gather(1, chosen[:, None]).sum()  # the windows are independent: one backward
        (grads,) = torch.autograd.grad(picked, inputs)
    return grads, [vocab.chars[i] for i in chosen.tolist()]


def influence(model: CharModel, vocab: Vocab, text: str, position: int, state_at: StateAt,
              horizon: int = HORIZON, positions: Sequence[int] | None = None) -> Influence:
    """The influence at ``position`` and the memory-horizon curve averaged over ``positions`` (default
    :func:`influence_positions`)."""
    positions = list(influence_positions(len(text), horizon) if positions is None else positions)
    norms, targets = gradient_norms(model, vocab, text, [position, *positions], state_at, horizon)
    reach = torch.tensor([[t - k >= 0 for k in range(horizon + 1)] for t in positions],
                         dtype=torch.float64).reshape(len(positions), horizon + 1)
    counts = reach.sum(0).clamp(min=1)
    mean = (norms[1:] * reach).sum(0) / counts
    return Influence(position, norms[0].tolist(), mean.tolist(), positions, targets[0])


def states_of(trace: Trace) -> StateAt:
    """:data:`StateAt` read off a whole-text :class:`Trace`."""
    def state_at(p: int) -> list[State] | None:
        if p < 0:
            return None
        return [layer.h[p] if layer.c is None else (layer.h[p], layer.c[p]) for layer in trace.layers]
    return state_at
