"""The quality table: a grid of models, each trained on a corpus by ``nextchar train --max-time`` for the same
wall-time budget, one after another (never two at once: they would slow each other), writing JSON.

Each row is one ``nextchar train`` process, exactly as a user would run it (the command is in the JSON), so
its time includes the start: Python, torch, the text. Per row: parameters, chars/s, validation loss (nats
and bits per character) at the budget, the wall time at which the validation loss first reached 1.886
(nanoGPT's CPU recipe after 90 s on this machine) and 1.4697 (nanoGPT's GPU shakespeare_char model), and a
300-character sample (``nextchar generate best.safetensors --length 300 --temperature 0.8 --seed 0``).
Evaluations are spread ~12 per budget from a short timing of each model before its run.

    python bench/quality.py --budget 60 --json bench/results-quality.json             # the whole grid
    python bench/quality.py --budget 90 --family lstm --hidden 256 --layers 1 --input onehot   # one row
    python bench/quality.py --row "--hidden-size 512 --num-layers 2 --dropout 0.2" --budget 15m --name big

tiny-shakespeare is fetched on first use (or put in $NEXTCHAR_DATA: these machines use the copy in
../shared/data). The val loss is on nanoGPT's split: the last 10%.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nextchar.benchmark import machine_description

THRESHOLDS = {"nanogpt_cpu_1.886": 1.886, "nanogpt_gpu_1.4697": 1.4697}
"""nanoGPT's shakespeare_char: its documented CPU recipe (90 s here, 0.80 M parameters) and its GPU model."""
COMMON = ["--batch-size", "32", "--seq-len", "64", "--lr-schedule", "cosine", "--warmup-steps", "20"]
"""What every grid row shares: the settings the 90-second runs chose (README, PERFORMANCE.md)."""
LR = {128: 1e-2, 256: 1e-2, 512: 4e-3}
"""The peak learning rate of each width (the plain RNN takes half: it diverges sooner)."""


def grid(families, hiddens, layers, inputs) -> list[tuple[str, list[str]]]:
    """(name, train flags) for each row of the grid."""
    rows = []
    for family in families:
        for hidden in hiddens:
            for depth in layers:
                for kind in inputs:
                    lr = LR.get(hidden, 3e-3) * (0.5 if family == "rnn" else 1.0)
                    flags = ["--model", family, "--hidden-size", str(hidden), "--num-layers", str(depth),
                             "--embedding-dim", "64" if kind == "embedding" else "0", "--lr", f"{lr:g}",
                             "--min-lr", f"{lr / 10:g}"]
                    rows.append((f"{family}-{hidden}x{depth}-{kind}", flags))
    return rows


def steps_per_second(flags: list[str], corpus_args: list[str]) -> float:
    """A few steps of the row's model, timed in this process (not counted in its budget)."""
    from nextchar.cli import main

    ctx = main.commands["train"].make_context("train", [*corpus_args, *COMMON, *flags, "--out", "unused"])
    p = ctx.params
    from nextchar.config import ModelConfig, parse_formulation
    from nextchar.model import CharModel

    family, kind = parse_formulation(p["formulation"])
    model = CharModel(ModelConfig(65, family, kind, p["hidden_size"], p["num_layers"], p["dropout"],
                                  embedding_dim=p["embedding_dim"] or None))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 65, (p["seq_len"], p["batch_size"]))
    for i in range(8):
        if i == 3:
            started = time.perf_counter()
        optimizer.zero_grad()
        logits, _ = model(x)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten()).backward()
        optimizer.step()
    return 5 / (time.perf_counter() - started)


def run_row(name: str, flags: list[str], budget: str, seconds: float, corpus_args: list[str], out: Path) -> dict:
    eval_every = max(10, round(steps_per_second(flags, corpus_args) * seconds / 12))
    command = ["nextchar", "train", *corpus_args, *COMMON, *flags, "--max-time", budget, "--eval-every",
               str(eval_every), "--out", str(out / name), "--no-progress", "--overwrite"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nextchar", *command[1:]], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"name": name, "command": shlex.join(command), "error": done.stderr[-2000:]}
    history = json.loads((out / name / "history.json").read_text())
    evals = history["evals"]
    start = wall - evals[-1]["seconds"]  # the process's start before the run's clock began (imports, text)
    last = evals[-1]
    sample = subprocess.run([sys.executable, "-m", "nextchar", "generate", str(out / name / "best.safetensors"),
                             "--length", "300", "--temperature", "0.8", "--seed", "0", "--prompt", "\\n"],
                            capture_output=True, text=True).stdout
    from nextchar.run.checkpoint import load_checkpoint

    params = sum(t.numel() for t in load_checkpoint(out / name / "best.safetensors").model_state.values())
    row = {"name": name, "command": shlex.join(command), "parameters": params, "steps": len(history["step_losses"]),
           "chars_per_sec": sorted(e["chars_per_sec"] for e in evals)[len(evals) // 2],  # training only, median
           "val_loss": last["val_loss"], "val_bpc": last["val_bpc"], "best_val_loss": min(e["val_loss"] for e in evals),
           "seconds": last["seconds"], "wall_seconds": wall, "start_seconds": start, "eval_every": eval_every,
           "curve": [[round(e["seconds"] + start, 2), round(e["val_loss"], 4)] for e in evals],
           "sample": sample.strip("\n")}
    for key, threshold in THRESHOLDS.items():  # wall time from the process's start, at the evaluation that did it
        reached = [e["seconds"] + start for e in evals if e["val_loss"] <= threshold]
        row[f"seconds_to_{key}"] = round(reached[0], 1) if reached else None
    return row


NANOGPT_POINTS = {"nanoGPT CPU recipe (0.80 M params), 90 s here": (90.0, 1.886)}
"""nanoGPT's shakespeare_char points marked on the plot; its GPU model's 1.4697 (10.6 M parameters, an A100,
~3 min there) is drawn as a line: no wall time on this machine compares with it."""


def plot(paths: list[str], out: str, best: int = 6) -> None:
    """Validation loss against wall time for the ``best`` rows (lowest loss at their budget) of the given
    results JSON files, nanoGPT's points marked."""
    from nextchar.plots import loss_curves, save

    rows = [row for path in paths for row in json.loads(Path(path).read_text())["rows"] if "curve" in row]
    rows = sorted(rows, key=lambda r: r["val_loss"])[:best]
    curves = {f"{r['name']} ({r['parameters'] / 1e6:.2f} M)": ([c[0] for c in r["curve"]], [c[1] for c in r["curve"]])
              for r in rows}
    fig = loss_curves(curves, title="tiny-shakespeare, validation loss (last 10%) against wall time, 2-core CPU",
                      xlabel="seconds since the command started", ylabel="val loss (nats/char)")
    ax = fig.axes[0]
    for label, (x, y) in NANOGPT_POINTS.items():
        ax.scatter([x], [y], marker="*", s=160, color="black", zorder=5, label=label)
    ax.axhline(1.4697, color="grey", linestyle="--", linewidth=1, label="nanoGPT GPU model (A100): 1.4697")
    ax.set_xscale("log")
    ax.set_ylim(top=2.3)
    ax.legend(fontsize=7)
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    save(fig, out)


def markdown(paths: list[str]) -> str:
    """The rows of these results files as a markdown table, lowest validation loss first."""
    lines = ["| model | parameters | chars/s | val loss (nats) | bpc | best val | to 1.886 | to 1.4697 | budget |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = [(row, json.loads(Path(path).read_text())["budget_seconds"]) for path in paths
            for row in json.loads(Path(path).read_text())["rows"] if "val_loss" in row]
    for row, budget in sorted(rows, key=lambda item: item[0]["val_loss"]):
        reached = [row[f"seconds_to_{key}"] for key in THRESHOLDS]
        lines.append(f"| {row['name']} | {row['parameters'] / 1e6:.2f} M | {row['chars_per_sec']:,.0f} | "
                     f"{row['val_loss']:.4f} | {row['val_bpc']:.3f} | {row['best_val_loss']:.4f} | "
                     + " | ".join("—" if r is None else f"{r:.0f} s" for r in reached) + f" | {budget:g} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="tiny-shakespeare")
    parser.add_argument("--corpus-bytes", default=None, help="for linux-kernel and python-stdlib")
    parser.add_argument("--budget", default="60s", help="wall time per row: 60, 90s, 15m (nextchar train --max-time)")
    parser.add_argument("--family", default="rnn,lstm,gru")
    parser.add_argument("--hidden", default="128,256,512")
    parser.add_argument("--layers", default="1,2")
    parser.add_argument("--input", default="onehot,embedding")
    parser.add_argument("--row", action="append", default=[], help="a row's own train flags instead of the grid")
    parser.add_argument("--name", action="append", default=[], help="the name of each --row")
    parser.add_argument("--json", default=None, help="write the results here (and print them)")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--plot", nargs="+", default=None, metavar="JSON",
                        help="only draw the best rows of these results files into --png (no training)")
    parser.add_argument("--png", default="docs/quality.png")
    parser.add_argument("--markdown", nargs="+", default=None, metavar="JSON",
                        help="only print these results files' rows as a markdown table (no training)")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.png)
        return
    if args.markdown:
        print(markdown(args.markdown))
        return
    from nextchar.run.time_budget import parse_duration

    seconds = parse_duration(args.budget)
    corpus_args = ["--corpus", args.corpus] + (["--corpus-bytes", args.corpus_bytes] if args.corpus_bytes else [])
    if args.row:
        rows = [(name, shlex.split(flags)) for name, flags in
                zip(args.name + [f"row{i}" for i in range(len(args.row))], args.row)]
    else:
        rows = grid(args.family.split(","), [int(h) for h in args.hidden.split(",")],
                    [int(n) for n in args.layers.split(",")], args.input.split(","))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        results = []
        for name, flags in rows:
            row = run_row(name, flags, args.budget, seconds, corpus_args, out)
            results.append(row)
            shown = {k: row.get(k) for k in ("name", "val_loss", "seconds_to_nanogpt_cpu_1.886", "chars_per_sec",
                                             "parameters", "error")}
            print(json.dumps(shown), file=sys.stderr, flush=True)
    payload = {"kind": "quality", "corpus": args.corpus, "budget_seconds": seconds, "thresholds": THRESHOLDS,
               "date": datetime.date.today().isoformat(), "machine": machine_description(), "torch": torch.__version__,
               "common_flags": COMMON, "rows": results}
    text = json.dumps(payload, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
