"""The exam's data: its text and mapping (``protocol.py``) as a vocabulary and one-hot pairs."""
from __future__ import annotations

from torch import Tensor

from ..vocab import Vocab, next_char_pairs
from . import protocol

EXAM_TEXT = protocol.TEXT
EXAM_MAPPING = protocol.MAPPING


def exam_data() -> tuple[Vocab, Tensor, Tensor]:
    """The exam's vocabulary (unsorted mapping) and its one-hot pairs, each (999, 7) float32."""
    vocab = Vocab.from_mapping(EXAM_MAPPING)
    x, y = next_char_pairs(EXAM_TEXT, vocab)
    return vocab, x, y
