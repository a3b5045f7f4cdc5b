"""Characters <-> indices, one-hot encoding and next-character pairs.

The exam's mapping is unsorted (``{'!': 0, '?': 1, 'h': 2, ...}``), so a vocabulary keeps the
exact order it was given; only :meth:`Vocab.from_text` sorts.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Vocab:
    """An ordered character vocabulary: ``chars[i]`` is the character with index ``i``."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.chars:
            raise ValueError("vocab: needs at least one character, got none")
        bad = [c for c in self.chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"vocab: every entry must be a single character, got {bad[:5]!r}"[:300])
        surrogates = [i for i, c in enumerate(self.chars) if 0xD800 <= ord(c) <= 0xDFFF]
        if surrogates:  # no UTF-8 text holds one; printing or saving it would fail far from here
            i = surrogates[0]
            raise ValueError(f"vocab: entry {i} ({self.chars[i]!r}) is a lone surrogate, not a Unicode scalar "
                             f"value; {len(surrogates)} such entries")
        seen: set[str] = set()
        dupes = sorted({c for c in self.chars if c in seen or seen.add(c)})  # one pass: long vocabularies too
        if dupes:
            raise ValueError(f"vocab: characters must be distinct, got duplicates {dupes[:20]!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, int]) -> Vocab:
        """Keep an explicit ``char -> index`` mapping exactly; its indices must be 0..V-1."""
        indices = sorted(mapping.values())
        if indices != list(range(len(mapping))):
            raise ValueError(
                f"vocab: mapping indices must be exactly 0..{len(mapping) - 1}, got {indices!r}"
            )
        by_index = {i: c for c, i in mapping.items()}
        return cls(tuple(by_index[i] for i in range(len(mapping))))

    @classmethod
    def from_text(cls, text: str | Iterable[str]) -> Vocab:
        """The sorted distinct characters of ``text``."""
        chars = sorted(set(text))
        if not chars:
            raise ValueError("vocab: cannot build a vocabulary from an empty text")
        return cls(tuple(chars))

    @property
    def mapping(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str | Iterable[str]) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, in order of appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def encode(self, text: str | Iterable[str]) -> Tensor:
        """Indices of ``text`` as a 1-D int64 tensor; unknown characters raise ``ValueError``."""
        text = list(text)
        missing = self.unknown(text)
        if missing:
            raise ValueError(
                f"vocab: characters {missing[:20]!r} are not in the vocabulary {''.join(self.chars)[:80]!r}"
            )
        table = self.mapping
        return torch.tensor([table[c] for c in text], dtype=torch.long)

    def decode(self, indices: Iterable[int] | Tensor) -> str:
        if isinstance(indices, Tensor):
            indices = indices.tolist()
        indices = list(indices)
        bad = [i for i in indices if not 0 <= i < len(self.chars)]
        if bad:
            raise ValueError(f"vocab: indices must be in 0..{len(self.chars) - 1}, got {bad[:5]!r}")
        return "".join(self.chars[i] for i in indices)

    def one_hot(self, text: str | Iterable[str]) -> Tensor:
        """One-hot float32 encoding of ``text``, shape (T, V)."""
        return F.one_hot(self.encode(text), len(self)).float()


def next_char_pairs(text: str | Iterable[str], vocab: Vocab) -> tuple[Tensor, Tensor]:
    """One-hot inputs ``text[:-1]`` and targets ``text[1:]``, each (T-1, V) float32, as the exam builds them."""
    text = list(text)
    if len(text) < 2:
        raise ValueError(f"data: next-character pairs need a text of at least 2 characters, got {len(text)}")
    encoded = vocab.one_hot(text)
    return encoded[:-1], encoded[1:]
