"""nextchar train vs a plain PyTorch trainer of the same model, on the same text, in one run.

The reference is the loop users know from pytorch/examples' word_language_model: Embedding(V, 64) ->
nn.LSTM/GRU/RNN(64, 256) -> Linear, B parallel streams, windows of 128, hidden state carried and
detached, AdamW 2e-3, clip 1. Both train the same number of steps, family by family, with torch's
default threads unless --threads is given; chars/s and the final validation loss are reported side by
side, with their ratio. Prints one JSON object.

    python bench/train_reference.py --steps 40            # quick, every family
    python bench/train_reference.py --epochs 5 --family lstm   # the full comparison (minutes)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from nextchar.cells import detach_state
from nextchar.corpora import CORPUS_BYTES, load_corpus
from nextchar.data import batchify, num_windows, split_text, unigram_loss, window
from nextchar.model import SEQUENCE_MODULES
from nextchar.run.trainer import TrainConfig, evaluate, train
from nextchar.vocab import Vocab


class Reference(nn.Module):
    def __init__(self, family: str, vocab_size: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = SEQUENCE_MODULES[family](embedding_dim, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x, state=None):
        output, state = self.rnn(self.embedding(x), state)
        return self.head(output), state


def reference_train(family: str, text: str, steps: int, seq_len: int, batch_size: int, val_fraction: float,
                    seed: int) -> dict:
    vocab = Vocab.from_text(text)
    train_text, val_text = split_text(text, val_fraction)
    streams = batchify(vocab.encode(train_text), batch_size, seq_len)
    val = batchify(vocab.encode(val_text), batch_size, seq_len)
    torch.manual_seed(seed)
    model = Reference(family, len(vocab), 64, 256)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    per_epoch, state = num_windows(streams, seq_len), None
    start = time.perf_counter()
    for step in range(steps):
        index = step % per_epoch
        if index == 0:
            state = None
        x, y = window(streams, index, seq_len)
        logits, state = model(x, state)
        state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    val_loss, _ = evaluate(model, val, seq_len, torch.device("cpu"))
    return {"chars_per_sec": steps * batch_size * seq_len / seconds, "val_loss": val_loss,
            "val_perplexity": math.exp(val_loss), "seconds": seconds}


def nextchar_train(family: str, text: str, steps: int, seq_len: int, batch_size: int, val_fraction: float, seed: int,
                   engine: str) -> dict:
    model = {"family": family, "kind": "scratch" if engine == "fused" else "module", "hidden_size": 256,
             "embedding_dim": 64, "engine": engine}
    config = TrainConfig(seq_len=seq_len, batch_size=batch_size, max_steps=steps, lr=2e-3, optimizer="adamw",
                         clip=1.0, val_fraction=val_fraction, eval_every=steps, seed=seed, device="cpu",
                         lr_schedule="constant", warmup_steps=0)  # the reference's constant rate
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's eval lines; stdout stays pure JSON
            result = train(text, model, config, run_dir, progress=False)
        seconds = time.perf_counter() - start
    last = result.evals[-1]
    train_seconds = steps * batch_size * seq_len / last["chars_per_sec"]
    return {"chars_per_sec": last["chars_per_sec"], "val_loss": last["val_loss"],
            "val_perplexity": last["val_perplexity"], "seconds": train_seconds, "seconds_with_eval": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: --epochs passes)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training text when --steps is unset")
    parser.add_argument("--corpus-bytes", type=int, default=CORPUS_BYTES, help="characters of the stdlib corpus")
    parser.add_argument("--family", action="append", choices=list(SEQUENCE_MODULES),
                        help="family to compare; repeatable (default: lstm, gru, rnn)")
    parser.add_argument("--fused", action="store_true", help="also time nextchar's fused engine")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))  # the fused kernels' BLAS, loaded later
    text = load_corpus("python-stdlib", args.corpus_bytes)
    seq_len, batch_size, val_fraction, seed = 128, 32, 0.1, 0
    vocab = Vocab.from_text(text)
    steps = args.steps or args.epochs * num_windows(
        batchify(vocab.encode(split_text(text, val_fraction)[0]), batch_size, seq_len), seq_len)
    result = {"steps": steps, "threads": torch.get_num_threads(), "corpus_chars": len(text),
              "unigram_perplexity": math.exp(unigram_loss(vocab.encode(text), len(vocab))), "families": {}}
    for family in args.family or ["lstm", "gru", "rnn"]:
        runs = {"reference": reference_train(family, text, steps, seq_len, batch_size, val_fraction, seed),
                "nextchar": nextchar_train(family, text, steps, seq_len, batch_size, val_fraction, seed, "autograd")}
        if args.fused:
            runs["nextchar_fused"] = nextchar_train(family, text, steps, seq_len, batch_size, val_fraction, seed,
                                                    "fused")
        for name in ("nextchar", "nextchar_fused"):
            if name in runs:
                runs[name]["speed_vs_reference"] = runs[name]["chars_per_sec"] / runs["reference"]["chars_per_sec"]
        result["families"][family] = runs
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
