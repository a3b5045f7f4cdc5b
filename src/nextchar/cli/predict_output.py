"""``nextchar predict``'s output for a text of any length, in bounded memory.

The text is read in pieces and predicted chunk by chunk with the state carried (``generate.predict_chunks``).
The printed table and the heatmap show a window of ``rows`` positions from ``offset``; ``--json`` and
``--csv`` carry every position, streamed to disk as they are computed.
"""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import torch

from ..generate import predict_chunks
from ..model import CharModel
from ..outputs import atomic_file
from ..vocab import Vocab

READ_SIZE = 1 << 16
"""Characters read from a file (or stdin) at a time."""


def read_pieces(path: str, command: str = "predict") -> Iterator[str]:
    """A UTF-8 text file, or stdin for ``-``, in pieces of READ_SIZE characters (errors name ``command``)."""
    if path == "-":
        yield from iter(lambda: sys.stdin.read(READ_SIZE), "")
        return
    if not Path(path).is_file():
        raise ValueError(f"{command}: --text-file {path!r} is not a file")
    try:
        with open(path, encoding="utf-8") as handle:
            yield from iter(lambda: handle.read(READ_SIZE), "")
    except UnicodeDecodeError as error:
        raise ValueError(f"{command}: --text-file {path!r} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start})") from None


def predict_to_files(model: CharModel, vocab: Vocab, pieces, rows: int, offset: int, json_path: str | None,
                     csv_path: str | None) -> tuple[str, torch.Tensor, int]:
    """Stream every position to the files asked for; return the window (its text, probs (n, V)) and the
    text's length."""
    window_text, window_probs, total = [], [], 0
    with ExitStack() as files:
        json_out = files.enter_context(atomic_file(json_path)) if json_path else None
        csv_out = files.enter_context(atomic_file(csv_path)) if csv_path else None
        if json_out:
            json_out.write('{"vocab": ' + json.dumps(list(vocab.chars)) + ', "positions": [')
        writer = csv.writer(csv_out) if csv_out else None
        if writer:
            writer.writerow(["position", "char", *vocab.chars])
        for start, text, probs in predict_chunks(model, vocab, pieces):
            rows_list = probs.tolist()
            for k, (char, row) in enumerate(zip(text, rows_list)):
                if json_out:
                    json_out.write(("," if start + k else "") + json.dumps(
                        {"position": start + k, "char": char, "probs": [round(p, 6) for p in row]}))
                if writer:
                    writer.writerow([start + k, char, *(f"{p:.6g}" for p in row)])
            lo, hi = max(offset - start, 0), min(offset + rows - start, len(text))
            if lo < hi:
                window_text.append(text[lo:hi])
                window_probs.append(probs[lo:hi])
            total = start + len(text)
        if json_out:
            json_out.write("]}\n")
    if offset >= total:
        raise ValueError(f"predict: --offset {offset} is past the text's end ({total} characters)")
    return "".join(window_text), torch.cat(window_probs), total
