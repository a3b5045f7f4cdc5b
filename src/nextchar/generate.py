"""Sampling text and next-character probabilities from a trained model.

Generation warms up on the prompt in one pass, then carries the state one character at a time
(as pytorch/examples' word_language_model/generate.py does), never re-feeding the context.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from .model import CharModel
from .vocab import Vocab


def _prompt_indices(vocab: Vocab, text: str, what: str) -> Tensor:
    if not text:
        raise ValueError(f"{what}: the text must have at least one character")
    missing = vocab.unknown(text)
    if missing:
        raise ValueError(f"{what}: characters {missing[:20]!r} are not in the model's vocabulary "
                         f"({len(vocab)} characters)")
    return vocab.encode(text)


def generate(model: CharModel, vocab: Vocab, prompt: str, length: int, temperature: float = 1.0,
             top_k: int | None = None, greedy: bool = False, seed: int | None = None) -> str:
    """``prompt`` followed by ``length`` sampled characters (argmax when ``greedy``)."""
    return prompt + "".join(sample(model, vocab, prompt, length, temperature, top_k, greedy, seed))


def sample(model: CharModel, vocab: Vocab, prompt: str, length: int, temperature: float = 1.0,
           top_k: int | None = None, greedy: bool = False, seed: int | None = None) -> Iterator[str]:
    """The ``length`` characters after ``prompt``, one at a time as they are drawn (so a long sample can be
    shown, or stopped, as it goes). The arguments are checked at once, before the first character."""
    if length < 0:
        raise ValueError(f"generate: length must be >= 0, got {length}")
    if not greedy and not temperature > 0:
        raise ValueError(f"generate: temperature must be > 0 (or use --greedy), got {temperature}")
    if top_k is not None and not 1 <= top_k:
        raise ValueError(f"generate: top_k must be >= 1, got {top_k}")
    indices = _prompt_indices(vocab, prompt, "generate")
    return _draw(model, vocab, indices, length, temperature, top_k, greedy, seed)


@torch.no_grad()
def _draw(model: CharModel, vocab: Vocab, prompt: Tensor, length: int, temperature: float, top_k: int | None,
          greedy: bool, seed: int | None) -> Iterator[str]:
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    model.eval()
    logits, state = model(prompt.to(device))  # (T, V): warm up on the whole prompt in one pass
    last = logits[-1]
    for _ in range(length):
        index = _choose(last, temperature, top_k, greedy, generator)
        yield vocab.chars[index]
        logits, state = model(torch.tensor([index], device=device), state)
        last = logits[-1]


def _choose(logits: Tensor, temperature: float, top_k: int | None, greedy: bool, generator: torch.Generator) -> int:
    if greedy:
        return int(logits.argmax())
    # Shift first, so a tiny temperature divides values <= 0 (-> -inf or 0) and never makes inf - inf.
    logits = (logits.double() - logits.double().max()) / temperature
    if top_k is not None and top_k < logits.numel():
        cutoff = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < cutoff, float("-inf"))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


@torch.no_grad()
def predict(model: CharModel, vocab: Vocab, text: str) -> Tensor:
    """Next-character probabilities after each position of ``text``: (T, V), on the CPU."""
    return torch.cat([probs for _, _, probs in predict_chunks(model, vocab, [text])])


CHUNK = 4096
"""Characters read per forward pass when predicting over a long text (the state is carried between)."""


@torch.no_grad()
def predict_chunks(model: CharModel, vocab: Vocab, pieces: Iterable[str], chunk: int = CHUNK
                   ) -> Iterator[tuple[int, str, Tensor]]:
    """Predict over a text given in pieces of any size, in bounded memory: yields ``(start, text, probs)``
    for each run of at most ``chunk`` characters, probs (n, V) on the CPU, the state carried between."""
    model.eval()
    device = next(model.parameters()).device
    state, start, empty = None, 0, True
    for piece in pieces:
        for offset in range(0, len(piece), chunk):
            part = piece[offset:offset + chunk]
            try:
                indices = _prompt_indices(vocab, part, "predict")
            except ValueError as error:
                raise ValueError(f"{error} (in characters {start}..{start + len(part) - 1})") from None
            logits, state = model(indices.to(device), state)
            yield start, part, logits.softmax(-1).cpu()
            start, empty = start + len(part), False
    if empty:
        raise ValueError("predict: the text must have at least one character")


def format_predictions(vocab: Vocab, text: str, probs: Tensor, top: int = 3, start: int | None = None) -> str:
    """One line per position: (its index from ``start``,) the character read and the ``top`` most likely
    next characters."""
    lines = []
    values, indices = probs.topk(min(top, probs.shape[-1]), dim=-1)
    for k, (char, vals, idxs) in enumerate(zip(text, values.tolist(), indices.tolist())):
        guesses = "  ".join(f"{vocab.chars[i]!r} {v:.3f}" for v, i in zip(vals, idxs))
        where = "" if start is None else f"{start + k:>8} "
        lines.append(f"{where}{char!r:>6} -> {guesses}")
    return "\n".join(lines)
