"""Text in, training streams out: reading files, the train/validation split, batching (the built-in
corpora are ``corpora.py``).

Minibatches are B parallel streams of the text (as pytorch/examples' word_language_model batchifies):
the text is cut into B contiguous pieces laid side by side, (N, B), then read in windows of seq_len.
Because stream b's window i+1 continues its window i, the hidden state can be carried across windows.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file's contents; empty, missing or non-UTF-8 files get a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data: {str(path)!r} is not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"data: {str(path)!r} is not UTF-8 text (byte {error.start}: "
                         f"{raw[error.start:error.start + 1]!r}); nextchar trains on UTF-8 text files") from None
    if not text:
        raise ValueError(f"data: {str(path)!r} is empty")
    return text


TRAIN_BYTES_PER_CHARACTER = 32
"""Peak memory of taking a text into training, per character: its list of characters and of ids and the
int64 tensor of ids, beside the text itself (25 bytes measured on 20 MB of ASCII; rounded up)."""


def check_train_text(characters: int, what: str) -> None:
    """Refuse, before reading or encoding it, a training text whose encoding would not fit the memory budget
    (``characters``: a file's size in bytes bounds its characters)."""
    from .budget import check_memory

    check_memory(characters * TRAIN_BYTES_PER_CHARACTER, f"train: {what} ({characters:,} characters)",
                 "train on a shorter part of it (split the file, or --corpus-bytes)")


def split_point(length: int, val_fraction: float) -> int:
    """Where the validation part begins: nanoGPT's ``int(n * 0.9)`` for val_fraction 0.1 (tiny-shakespeare's
    1,115,394 characters train on the first 1,003,854 and validate on the last 111,540)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data: val_fraction must be in [0, 1), got {val_fraction}")
    return int(length * (1.0 - val_fraction))


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Contiguous split: the first (1 - val_fraction) of the text trains, the rest validates."""
    cut = split_point(len(text), val_fraction)
    return text[:cut], text[cut:]


class Streams(NamedTuple):
    train: Tensor
    """This rank's training streams, (N, batch_size / world_size) character indices."""
    val: Tensor | None
    """Validation streams (M, b), b <= batch_size, the same on every rank; None without validation text."""


def text_streams(encoded: Tensor, batch_size: int, seq_len: int, val_fraction: float, rank: int = 0,
                 world_size: int = 1) -> Streams:
    """The training streams of one rank and the validation streams, from the encoded text (N,) in one call."""
    cut = split_point(encoded.numel(), val_fraction)
    train = shard_streams(batchify(encoded[:cut], batch_size, seq_len, "training text"), rank, world_size)
    return Streams(train, _val_streams(encoded[cut:], batch_size, seq_len))


def _val_streams(encoded: Tensor, batch_size: int, seq_len: int) -> Tensor | None:
    """As many streams as fit (at most batch_size); None when there is no validation text."""
    if encoded.numel() == 0:
        return None
    streams = min(batch_size, encoded.numel() // (seq_len + 1))
    if streams < 1:
        raise ValueError(f"data: the validation text has {encoded.numel()} characters, fewer than seq_len + 1 = "
                         f"{seq_len + 1}; raise --val-fraction, lower --seq-len, or use --val-fraction 0")
    return batchify(encoded, streams, seq_len, "validation text")


def batchify(encoded: Tensor, batch_size: int, seq_len: int, what: str = "text") -> Tensor:
    """Lay ``encoded`` (N,) out as ``batch_size`` contiguous streams side by side: (N // B, B).

    At least one window needs seq_len + 1 characters per stream (inputs and the shifted targets).
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"data: batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
    per_stream = encoded.numel() // batch_size
    if per_stream < seq_len + 1:
        raise ValueError(
            f"data: the {what} has {encoded.numel()} characters, too few for {batch_size} streams of at least "
            f"seq_len + 1 = {seq_len + 1}; lower --batch-size or --seq-len, or give more text")
    return encoded[: per_stream * batch_size].view(batch_size, per_stream).t().contiguous()


def num_windows(streams: Tensor, seq_len: int) -> int:
    """Windows in one pass over (N, B) streams; the last one may be shorter."""
    return -(-(streams.shape[0] - 1) // seq_len)


def window(streams: Tensor, index: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """Window ``index``: inputs (L, B) and the next characters (L, B), L <= seq_len."""
    start = index * seq_len
    length = min(seq_len, streams.shape[0] - 1 - start)
    return streams[start:start + length], streams[start + 1:start + 1 + length]


def shard_streams(streams: Tensor, rank: int, world_size: int) -> Tensor:
    """This rank's disjoint share of the parallel streams (columns rank, rank + W, ...)."""
    if streams.shape[1] % world_size:
        raise ValueError(f"data: batch_size {streams.shape[1]} must be divisible by the {world_size} processes")
    return streams[:, rank::world_size]


def unigram_loss(encoded: Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats/char) of predicting every character by its overall frequency: the baseline to beat."""
    counts = torch.bincount(encoded, minlength=vocab_size).double()
    probs = counts / counts.sum()
    nonzero = probs[probs > 0]
    return float(-(nonzero * nonzero.log()).sum())
