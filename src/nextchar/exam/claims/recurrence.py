"""Claim 4: does predicting the next character of a, b, c, d, a, ... need a recurrent network?"""
from __future__ import annotations

from collections import Counter, defaultdict

import torch
import torch.nn as nn

from ...config import ModelConfig
from ...model import CharModel
from ...sequence import protocol as exam
from ...sequence.data import EXAM_MAPPING, EXAM_TEXT
from ...sequence.fitting import fit
from ...vocab import Vocab, next_char_pairs
from .result import ClaimResult


class Memoryless(nn.Module):
    """A feed-forward map of the current character alone: logits = W onehot(x_t) + b. It has no state."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.head = nn.Linear(vocab_size, vocab_size)

    def forward(self, x: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        return self.head(x), None


def memoryless_ceiling(text: str) -> tuple[float, dict[str, dict[str, int]]]:
    """Best accuracy any function of the current character can reach, and the followers of each character."""
    followers: dict[str, Counter] = defaultdict(Counter)
    for current, following in zip(text, text[1:]):
        followers[current][following] += 1
    best = sum(max(c.values()) for c in followers.values())
    return best / (len(text) - 1), {ch: dict(c) for ch, c in followers.items()}


def _train(model: nn.Module, text: str, vocab: Vocab, epochs: int, device: str) -> float:
    x, y = next_char_pairs(text, vocab)
    return fit(model, x, y, epochs=epochs, lr=exam.LR, device=device).history[-1]["accuracy"]


def claim_needs_recurrence(epochs: int = 200, seed: int = 0, device: str = "cpu") -> ClaimResult:
    abcd = "abcd" * 50
    abcd_vocab = Vocab.from_text(abcd)
    torch.manual_seed(seed)
    abcd_acc = _train(Memoryless(len(abcd_vocab)), abcd, abcd_vocab, epochs, device)

    exam_vocab = Vocab.from_mapping(EXAM_MAPPING)
    ceiling, followers = memoryless_ceiling(EXAM_TEXT)
    torch.manual_seed(seed)
    flat_acc = _train(Memoryless(len(exam_vocab)), EXAM_TEXT, exam_vocab, epochs, device)
    torch.manual_seed(seed)
    rnn_acc = _train(CharModel(ModelConfig(len(exam_vocab), "lstm", "module", exam.HIDDEN_SIZE["lstm"])), EXAM_TEXT,
                     exam_vocab, epochs, device)
    ambiguous = {c: f for c, f in followers.items() if len(f) > 1}
    verdict = abcd_acc < 1.0
    return ClaimResult(
        4, "To predict the next character of a, b, c, d, a, b, c, d, ... the network must be recurrent.", verdict,
        {"abcd": {"memoryless_accuracy": abcd_acc},
         "hi?hello!!": {"memoryless_ceiling": ceiling, "memoryless_accuracy": flat_acc,
                        "recurrent_accuracy": rnn_acc, "ambiguous_followers": ambiguous},
         "epochs": epochs, "seed": seed},
        f"A memoryless Linear map of the current character alone reaches {abcd_acc:.0%} on abcd..., where each "
        f"character has one successor, so recurrence is not needed. On the exam's text it cannot: "
        f"{', '.join(f'{c!r} is followed by {sorted(f)}' for c, f in ambiguous.items())}, so no function of "
        f"the current character beats {ceiling:.1%} (it got {flat_acc:.1%}); the recurrent "
        f"nn.LSTM({len(exam_vocab)}, {exam.HIDDEN_SIZE['lstm']}) got {rnn_acc:.1%}.")
