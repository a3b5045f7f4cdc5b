"""Where a ``nextchar train`` step's time goes at the sizes the quality table uses, and what threads and
``--engine fused`` buy. Phases of one step, each timed apart (median over steps, after warm-up):
the recurrence's forward, the head and loss (the 65-way Linear and cross-entropy), backward, gradient
clipping, the optimizer step; an evaluation's cost per character against a training step's; and the
whole step with 1 and 2 threads, and for the hand-written cell under the fused engine. Prints JSON.

    python bench/train_profile.py                 # hidden 256 (1 layer, one-hot) and 512 (2 layers, embedding)
"""
from __future__ import annotations

import json
import statistics
import time

import torch
import torch.nn.functional as F

from nextchar.config import ModelConfig
from nextchar.model import CharModel
from nextchar.run.trainer import evaluate

SIZES = {"lstm-256x1-onehot": dict(hidden_size=256), "lstm-512x2-embedding": dict(hidden_size=512, num_layers=2,
                                                                                    embedding_dim=64)}
BATCH, SEQ, VOCAB, STEPS = 32, 64, 65, 12


def _phases(model: CharModel, x, y) -> dict[str, float]:
    """Median milliseconds of each phase of a training step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times: dict[str, list[float]] = {k: [] for k in ("recurrence", "head_and_loss", "backward", "clip", "optimizer")}
    for i in range(STEPS + 3):
        optimizer.zero_grad()
        marks = [time.perf_counter()]
        features, _ = model.core(model.encode(x))  # (T, B, H): the recurrent layers
        marks.append(time.perf_counter())
        loss = F.cross_entropy(model.head(features).flatten(0, 1), y.flatten())
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if i >= 3:
            for key, start, end in zip(times, marks, marks[1:]):
                times[key].append(1000 * (end - start))
    return {key: statistics.median(values) for key, values in times.items()}


def _step_ms(model: CharModel, x, y) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for i in range(STEPS + 3):
        started = time.perf_counter()
        optimizer.zero_grad()
        logits, _ = model(x)
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if i >= 3:
            times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    x, y = torch.randint(0, VOCAB, (SEQ, BATCH)), torch.randint(0, VOCAB, (SEQ, BATCH))
    out = {"batch_size": BATCH, "seq_len": SEQ, "vocab": VOCAB, "sizes": {}}
    for name, options in SIZES.items():
        row: dict = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model = CharModel(ModelConfig(VOCAB, "lstm", **options))
            phases = _phases(model, x, y)
            row[f"threads_{threads}"] = {"phases_ms": phases, "step_ms": _step_ms(model, x, y)}
        step = row["threads_2"]["step_ms"]
        row["phase_share"] = {k: v / sum(row["threads_2"]["phases_ms"].values())
                              for k, v in row["threads_2"]["phases_ms"].items()}
        row["chars_per_sec"] = BATCH * SEQ / step * 1000
        row["two_threads_speedup"] = row["threads_1"]["step_ms"] / step
        val = torch.randint(0, VOCAB, (111_540 // BATCH, BATCH))
        started = time.perf_counter()
        evaluate(model, val, SEQ, torch.device("cpu"))
        row["eval_ms_per_char_vs_train"] = (time.perf_counter() - started) / val.numel() / (step / 1000 / (BATCH * SEQ))
        scratch = CharModel(ModelConfig(VOCAB, "lstm", "scratch", engine="fused", **options))
        row["fused_scratch_step_ms"] = _step_ms(scratch, x, y)
        row["fused_vs_module"] = step / row["fused_scratch_step_ms"]
        out["sizes"][name] = row
        print(json.dumps({name: row}), flush=True)
    torch.set_num_threads(2)


if __name__ == "__main__":
    main()
