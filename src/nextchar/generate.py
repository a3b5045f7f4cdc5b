"""Sampling text and next-character probabilities from a trained model.

Generation warms up on the prompt in one pass, then carries the state one character at a time
(as pytorch/examples' word_language_model/generate.py does), never re-feeding the context. One sample
streams (:func:`sample`); many are one batched forward per step for all of them (:func:`sample_many`),
each with its own stream of the seed; :func:`beam_search` keeps the K likeliest continuations.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .cells import State
from .model import CharModel
from .vocab import Vocab


def prompt_indices(vocab: Vocab, text: str, what: str) -> Tensor:
    """``text`` as the model's indices (T,), or a clear error naming ``what`` asked and the characters the
    vocabulary lacks."""
    if not text:
        raise ValueError(f"{what}: the text must have at least one character")
    missing = vocab.unknown(text)
    if missing:
        raise ValueError(f"{what}: characters {missing[:20]!r} are not in the model's vocabulary "
                         f"({len(vocab)} characters)")
    return vocab.encode(text)


@dataclass(frozen=True)
class Sampling:
    """How the next character is drawn from the logits: argmax when ``greedy``; else softmax(logits /
    temperature) restricted to the ``top_k`` likeliest characters, then to the nucleus of ``top_p`` (the
    likeliest characters whose probabilities, taken in falling order, reach top_p: every character whose
    predecessors sum to less than top_p, so the likeliest is always kept), renormalised."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False

    def check(self) -> Sampling:
        if not self.greedy and not self.temperature > 0:
            raise ValueError(f"generate: temperature must be > 0 (or use --greedy), got {self.temperature}")
        if self.top_k is not None and not 1 <= self.top_k:
            raise ValueError(f"generate: top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"generate: top_p must be in (0, 1], got {self.top_p}")
        return self

    def distribution(self, logits: Tensor) -> Tensor:
        """The probabilities a character is drawn with, (V,) float64 (one-hot at the argmax when greedy)."""
        if self.greedy:
            return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).double()
        # Shift first, so a tiny temperature divides values <= 0 (-> -inf or 0) and never makes inf - inf.
        logits = (logits.double() - logits.double().max()) / self.temperature
        if self.top_k is not None and self.top_k < logits.numel():
            cutoff = logits.topk(self.top_k).values[-1]
            logits = logits.masked_fill(logits < cutoff, float("-inf"))
        probs = logits.softmax(-1)
        if self.top_p is not None and self.top_p < 1:
            ordered, order = probs.sort(descending=True, stable=True)
            before = ordered.cumsum(0) - ordered  # the mass of the likelier characters
            probs = torch.zeros_like(probs).scatter(0, order, ordered.masked_fill(before >= self.top_p, 0.0))
            probs = probs / probs.sum()
        return probs

    def choose(self, logits: Tensor, generator: torch.Generator) -> int:
        if self.greedy:
            return int(logits.argmax())
        return int(torch.multinomial(self.distribution(logits), 1, generator=generator))


def generate(model: CharModel, vocab: Vocab, prompt: str, length: int, temperature: float = 1.0,
             top_k: int | None = None, greedy: bool = False, seed: int | None = None,
             top_p: float | None = None) -> str:
    """``prompt`` followed by ``length`` sampled characters (argmax when ``greedy``)."""
    return prompt + "".join(sample(model, vocab, prompt, length, temperature, top_k, greedy, seed, top_p=top_p))


def _check(length: int, stop: str | None) -> None:
    if length < 0:
        raise ValueError(f"generate: length must be >= 0, got {length}")
    if stop is not None and not stop:
        raise ValueError("generate: the stop string must have at least one character")


def sample(model: CharModel, vocab: Vocab, prompt: str, length: int, temperature: float = 1.0,
           top_k: int | None = None, greedy: bool = False, seed: int | None = None,
           stop: str | None = None, top_p: float | None = None) -> Iterator[str]:
    """The ``length`` characters after ``prompt``, one at a time as they are drawn (so a long sample can be
    shown, or stopped, as it goes), ending early after the first ``stop`` string. The arguments are checked
    at once, before the first character."""
    _check(length, stop)
    how = Sampling(temperature, top_k, top_p, greedy).check()
    indices = prompt_indices(vocab, prompt, "generate")
    return _draw(model, vocab, indices, length, how, seed, stop)


@torch.no_grad()
def _draw(model: CharModel, vocab: Vocab, prompt: Tensor, length: int, how: Sampling, seed: int | None,
          stop: str | None = None) -> Iterator[str]:
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    model.eval()
    logits, state = model(prompt.to(device))  # (T, V): warm up on the whole prompt in one pass
    last, tail = logits[-1], ""
    for _ in range(length):
        index = how.choose(last, generator)
        yield vocab.chars[index]
        tail = (tail + vocab.chars[index])[-len(stop):] if stop else ""
        if stop and tail == stop:
            return
        logits, state = model(torch.tensor([index], device=device), state)
        last = logits[-1]


@torch.no_grad()
def logprob_of(model: CharModel, vocab: Vocab, prompt: str, text: str) -> float:
    """The model's log probability of ``text`` following ``prompt`` (one forward pass over both)."""
    if not text:
        return 0.0
    indices = prompt_indices(vocab, prompt + text, "generate")
    model.eval()
    logits, _ = model(indices.to(next(model.parameters()).device))  # (T, V)
    steps = logits[len(prompt) - 1:-1].double().log_softmax(-1)  # the predictions of text's characters
    return float(steps.gather(1, indices[len(prompt):, None].to(steps.device)).sum())


MAX_SAMPLES = 100_000
"""The most samples one call draws (each is kept as text); past it, a clear error."""
SAMPLE_BATCH = 1024
"""Samples computed together: the forward's memory is that of this many states, however many are asked."""


@dataclass
class Sample:
    text: str
    """The generated characters (the prompt not included), up to and including a stop string."""
    logprob: float
    """The model's log probability of ``text`` given the prompt (its own distribution: temperature 1)."""
    done: bool = False


def stream_seed(seed: int, index: int) -> int:
    """The seed of sample ``index``'s own stream: sample 0 uses ``seed`` itself (as a single sample does)."""
    if index == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def sample_many(model: CharModel, vocab: Vocab, prompt: str, length: int, num_samples: int,
                temperature: float = 1.0, top_k: int | None = None, greedy: bool = False, seed: int = 0,
                stop: str | None = None, into: list[Sample] | None = None, top_p: float | None = None,
                progress: Callable[[int], None] | None = None) -> list[Sample]:
    """``num_samples`` independent samples, one batched forward per step for all of a batch. ``into``, if
    given, is filled as the samples grow: a batch's samples join it when that batch starts, so after Ctrl-C
    it holds only samples begun (what a caller shows). ``progress(n)``: n more characters drawn."""
    _check(length, stop)
    how = Sampling(temperature, top_k, top_p, greedy).check()
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise ValueError(f"generate: --num-samples must be 1..{MAX_SAMPLES}, got {num_samples}")
    indices = prompt_indices(vocab, prompt, "generate")
    samples = into if into is not None else []
    for first in range(0, num_samples, SAMPLE_BATCH):
        batch = [Sample("", 0.0) for _ in range(min(SAMPLE_BATCH, num_samples - first))]
        samples.extend(batch)
        seeds = [stream_seed(seed, first + i) for i in range(len(batch))]
        _draw_batch(model, vocab, indices, length, how, seeds, stop, batch, progress or (lambda n: None))
    return samples


@torch.no_grad()
def _warm_up(model: CharModel, prompt: Tensor, batch: int) -> tuple[Tensor, State]:
    """The prompt's last logits and the state after it, repeated for ``batch`` rows: (B, V), (L, B, H)."""
    from .cells import map_state

    device = next(model.parameters()).device
    model.eval()
    logits, state = model(prompt.to(device))  # (T, V); state (L, H)
    return logits[-1].expand(batch, -1), map_state(lambda s: s.unsqueeze(1).expand(-1, batch, -1).contiguous(),
                                                   state)


@torch.no_grad()
def _draw_batch(model: CharModel, vocab: Vocab, prompt: Tensor, length: int, how: Sampling, seeds: list[int],
                stop: str | None, samples: list[Sample], progress: Callable[[int], None]) -> None:
    device = next(model.parameters()).device
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    last, state = _warm_up(model, prompt, len(samples))
    for step in range(length):
        log_probs = last.double().log_softmax(-1)  # (B, V)
        chosen = [how.choose(last[b], generators[b]) for b in range(len(samples))]
        for b, (sample, index) in enumerate(zip(samples, chosen)):
            if not sample.done:
                sample.text += vocab.chars[index]
                sample.logprob += float(log_probs[b, index])
                sample.done = bool(stop) and sample.text.endswith(stop)
        progress(len(samples))
        if all(sample.done for sample in samples):
            progress(len(samples) * (length - step - 1))  # the stopped samples' characters count as drawn
            return
        logits, state = model(torch.tensor([chosen], device=device), state)  # (1, B, V)
        last = logits[0]


MAX_BEAM = 4096
MAX_LENGTH_PENALTY = 10.0
"""|--length-penalty| at most: length ** 10 already ranks by length alone; past it the scores overflow."""


def check_length_penalty(value: float) -> None:
    if not -MAX_LENGTH_PENALTY <= value <= MAX_LENGTH_PENALTY:  # NaN fails this too
        raise ValueError(f"generate: --length-penalty must be a finite number in [-{MAX_LENGTH_PENALTY:g}, "
                         f"{MAX_LENGTH_PENALTY:g}], got {value}")


def beam_search(model: CharModel, vocab: Vocab, prompt: str, length: int, beam: int, length_penalty: float = 0.0,
                stop: str | None = None) -> Sample:
    """The continuation of ``length`` characters (or ending at ``stop``) with the highest log probability
    (divided by its length ** ``length_penalty``) among the ``beam`` kept at each step; deterministic. The
    greedy continuation is a candidate too, so the result never scores below it."""
    _check(length, stop)
    if not 1 <= beam <= MAX_BEAM:
        raise ValueError(f"generate: --beam must be 1..{MAX_BEAM}, got {beam}")
    check_length_penalty(length_penalty)
    indices = prompt_indices(vocab, prompt, "generate")
    score = lambda s: s.logprob / max(len(s.text), 1) ** length_penalty  # noqa: E731
    candidates = _beams(model, vocab, indices, length, beam, stop)
    candidates.append(_greedy(model, vocab, indices, length, stop))
    return max(candidates, key=score)


def _greedy(model: CharModel, vocab: Vocab, prompt: Tensor, length: int, stop: str | None) -> Sample:
    greedy = [Sample("", 0.0)]
    _draw_batch(model, vocab, prompt, length, Sampling(greedy=True), [0], stop, greedy, lambda n: None)
    return greedy[0]


@torch.no_grad()
def _beams(model: CharModel, vocab: Vocab, prompt: Tensor, length: int, beam: int, stop: str | None) -> list[Sample]:
    """The live beams after ``length`` steps, and every beam that met ``stop`` on the way."""
    from .cells import map_state

    device, V = next(model.parameters()).device, len(vocab)
    last, state = _warm_up(model, prompt, 1)
    live, finished = [Sample("", 0.0)], []
    for _ in range(length):
        totals = torch.tensor([s.logprob for s in live], dtype=torch.float64, device=device)[:, None]
        scores = (totals + last.double().log_softmax(-1)).flatten()  # (K * V): beam row * V + next character
        best = scores.topk(min(beam, scores.numel())).indices.tolist()  # ties: topk's own order, deterministic
        grown = [Sample(live[i // V].text + vocab.chars[i % V], float(scores[i])) for i in best]
        ended = [bool(stop) and s.text.endswith(stop) for s in grown]
        finished += [Sample(s.text, s.logprob, True) for s, end in zip(grown, ended) if end]
        kept = [i for i, end in zip(best, ended) if not end]
        if not kept:
            return finished
        live = [s for s, end in zip(grown, ended) if not end]
        parents = [i // V for i in kept]
        state = map_state(lambda s: s[:, parents], state)  # noqa: B023 - used at once: each kept beam's parent's state
        logits, state = model(torch.tensor([[i % V for i in kept]], device=device), state)  # (1, K, V)
        last = logits[0]
    return live + finished


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
                indices = prompt_indices(vocab, part, "predict")
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
