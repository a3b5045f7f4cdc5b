"""Text in, training streams out: reading files, the built-in corpus, train/validation split, batching.

Minibatches are B parallel streams of the text (as pytorch/examples' word_language_model batchifies):
the text is cut into B contiguous pieces laid side by side, (N, B), then read in windows of seq_len.
Because stream b's window i+1 continues its window i, the hidden state can be carried across windows.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from torch import Tensor

CORPORA = ("python-stdlib",)
CORPUS_BYTES = 1_000_000
"""How much of a built-in corpus is used unless asked otherwise (--corpus-bytes): 1 MB."""


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file's contents; empty, missing or non-UTF-8 files get a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data: {str(path)!r} is not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"data: {str(path)!r} is not UTF-8 text (byte {error.start}: {raw[error.start:error.start + 1]!r}); "
                         "nextchar trains on UTF-8 text files") from None
    if not text:
        raise ValueError(f"data: {str(path)!r} is empty")
    return text


def python_stdlib_corpus(max_bytes: int = CORPUS_BYTES) -> str:
    """The Python standard library's own source: its top-level ``*.py`` files in sorted name order, then
    those one package level down, each preceded by a ``# file: NAME`` line, cut at ``max_bytes`` characters.

    Deterministic for a given Python version; tests, ``test``-named and site-packages folders are skipped.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    top = sorted(root.glob("*.py"))
    nested = sorted(p for p in root.glob("*/*.py")
                    if not any(part.startswith(("test", "site-packages", "idle")) for part in p.relative_to(root).parts))
    pieces, size = [], 0
    for path in top + nested:
        text = path.read_text(encoding="utf-8", errors="replace")
        piece = f"# file: {path.relative_to(root).as_posix()}\n{text}\n"
        pieces.append(piece)
        size += len(piece)
        if size >= max_bytes:
            break
    corpus = "".join(pieces)[:max_bytes]
    if not corpus:
        raise ValueError(f"data: found no Python sources under {str(root)!r}")
    return corpus


def load_corpus(name: str, max_bytes: int = CORPUS_BYTES) -> str:
    if name != "python-stdlib":
        raise ValueError(f"data: corpus must be one of {CORPORA}, got {name!r}")
    return python_stdlib_corpus(max_bytes)


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Contiguous split: the first (1 - val_fraction) of the text trains, the rest validates."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data: val_fraction must be in [0, 1), got {val_fraction}")
    cut = len(text) - int(len(text) * val_fraction)
    return text[:cut], text[cut:]


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
