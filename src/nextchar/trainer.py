"""``nextchar train``: minibatched truncated BPTT on any text, validation, checkpoints with true resume.

One step reads one window (seq_len, B) of the B parallel streams; the hidden state is carried to the
next window and detached there (truncated BPTT), and reset at the start of each pass over the text.
A run folder holds ``last.safetensors``, ``best.safetensors``, ``history.json``, ``history.csv`` and
``loss.png``. Resuming restores model, optimizer, step, carried state and RNG, so an interrupted and
resumed run computes the same losses as one that was never interrupted.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import detach_state
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, restore_rng, rng_states, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import batchify, num_windows, shard_streams, split_text, window
from .device import resolve_device
from .distributed import Distributed
from .model import CharModel
from .step import train_step
from .training import make_optimizer, perplexity
from .vocab import Vocab


@dataclass
class TrainResult:
    model: CharModel
    vocab: Vocab
    run_dir: Path
    evals: list[dict] = field(default_factory=list)
    """One record per validation: step, epoch, train_loss, val_loss, val_perplexity, val_accuracy, chars_per_sec."""
    step_losses: list[float] = field(default_factory=list)
    """Training loss of every optimizer step since the run began (restored on resume)."""
    best_val_loss: float | None = None


@torch.no_grad()
def evaluate(model: CharModel, streams: Tensor, seq_len: int, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy (nats/char) and accuracy over (N, B) streams, state carried across windows."""
    model.eval()
    total_loss, total_right, total = 0.0, 0, 0
    state = None
    for index in range(num_windows(streams, seq_len)):
        x, y = (t.to(device) for t in window(streams, index, seq_len))
        logits, state = model(x, state)
        total_loss += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        total_right += (logits.argmax(-1) == y).sum().item()
        total += y.numel()
    model.train()
    return total_loss / total, total_right / total


def _prepare_vocab(text: str, run_dir: Path, resume: bool) -> tuple[Vocab, Checkpoint | None]:
    if not text:
        raise ValueError("train: the training text is empty")
    if not resume:
        return Vocab.from_text(text), None
    checkpoint = load_checkpoint(run_dir / "last.safetensors")
    missing = checkpoint.vocab.unknown(text)
    if missing:
        raise CheckpointError(f"checkpoint: its vocabulary lacks characters of this text: {missing[:20]!r}; "
                              "resume with the text it was trained on")
    return checkpoint.vocab, checkpoint


def _val_streams(val_encoded: Tensor, config: TrainConfig) -> Tensor | None:
    """Validation streams: as many as fit (at most batch_size); None when there is no validation text."""
    if val_encoded.numel() == 0:
        return None
    streams = min(config.batch_size, val_encoded.numel() // (config.seq_len + 1))
    if streams < 1:
        raise ValueError(f"data: the validation text has {val_encoded.numel()} characters, fewer than seq_len + 1 = "
                         f"{config.seq_len + 1}; raise --val-fraction, lower --seq-len, or use --val-fraction 0")
    return batchify(val_encoded, streams, config.seq_len, "validation text")


def train(text: str, model_config: ModelConfig | dict, config: TrainConfig, run_dir: str | Path,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a character model on ``text``; see the module docstring. ``model_config`` may omit vocab_size."""
    dist = Distributed.from_env()
    run_dir = Path(run_dir)
    vocab, checkpoint = _prepare_vocab(text, run_dir, resume)
    if checkpoint is not None:
        model_config = checkpoint.model_config
    elif isinstance(model_config, dict):
        model_config = ModelConfig(vocab_size=len(vocab), **model_config)
    if model_config.engine == "compiled":
        raise ValueError("train: the compiled engine runs fit's whole-sequence protocol (the exam) only; "
                         "use --engine fused for compiled kernels in nextchar train")
    if model_config.vocab_size != len(vocab):
        raise ValueError(f"train: model vocab_size {model_config.vocab_size} does not match the text's {len(vocab)}")
    device = dist.device(resolve_device(config.device))
    train_text, val_text = split_text(text, config.val_fraction)
    streams = shard_streams(batchify(vocab.encode(train_text), config.batch_size, config.seq_len, "training text"),
                            dist.rank, dist.world_size)
    val_streams = _val_streams(vocab.encode(val_text), config)

    torch.manual_seed(config.seed)
    model = CharModel(model_config).to(device)
    trained = dist.wrap(model)
    opt = make_optimizer(config.optimizer, model.parameters(), config.lr)
    result = TrainResult(model, vocab, run_dir)
    step, carry = 0, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model_state)
        if checkpoint.optimizer is not None:
            opt.load_state_dict(checkpoint.optimizer)
        step, result.best_val_loss = checkpoint.step, checkpoint.best_val_loss
        carry = dist.my_carry(checkpoint.carry, device)
        restore_rng(checkpoint.rng)
        result.evals, result.step_losses = _read_history(run_dir, step)

    per_epoch = num_windows(streams, config.seq_len)
    total_steps = config.max_steps or config.epochs * per_epoch
    chars_per_step = config.batch_size * config.seq_len
    bar = _progress_bar(total_steps, step, progress and dist.is_main)
    interval_losses, interval_start = [], time.perf_counter()
    while step < total_steps:
        epoch, index = divmod(step, per_epoch)
        if index == 0:
            carry = None  # each pass over the text starts from a zero state
        x, y = (t.to(device) for t in window(streams, index, config.seq_len))
        _, loss, carry = train_step(trained, x, y, _window_loss, opt, state=carry, clip=config.clip,
                                    where=f"step {step + 1}")
        carry = detach_state(carry)
        step += 1
        loss_value = dist.mean(loss)
        result.step_losses.append(loss_value)
        interval_losses.append(loss_value)
        chars_per_sec = chars_per_step * len(interval_losses) / max(time.perf_counter() - interval_start, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", chars_s=f"{chars_per_sec:,.0f}")
        if step % config.eval_every == 0 or step == total_steps:
            record = {"step": step, "epoch": epoch + (index + 1) / per_epoch,
                      "train_loss": sum(interval_losses) / len(interval_losses), "chars_per_sec": chars_per_sec}
            record.update(_validate(model, val_streams, config, device, dist))
            result.evals.append(record)
            improved = record.get("val_loss") is not None and (
                result.best_val_loss is None or record["val_loss"] < result.best_val_loss)
            if improved:
                result.best_val_loss = record["val_loss"]
            full_carry = dist.gather_carry(carry)
            if dist.is_main:
                bar.write(_describe(record))
                snapshot = Checkpoint(model_config, vocab, model.state_dict(), step, epoch, result.best_val_loss,
                                      asdict(config), opt.state_dict(), config.optimizer, rng_states(), full_carry)
                save_checkpoint(run_dir / "last.safetensors", snapshot)
                if improved or val_streams is None:
                    save_checkpoint(run_dir / "best.safetensors", snapshot)
                _write_history(run_dir, result)
            interval_losses, interval_start = [], time.perf_counter()
    bar.close()
    if dist.is_main:
        _plot_history(run_dir, result)
    return result


def _window_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over a window: logits (L, B, V), target (L, B)."""
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def _validate(model, val_streams, config, device, dist) -> dict:
    if val_streams is None:
        return {"val_loss": None, "val_perplexity": None, "val_accuracy": None}
    val_loss, val_acc = evaluate(model, val_streams, config.seq_len, device)
    val_loss, val_acc = dist.mean(torch.tensor(val_loss)), dist.mean(torch.tensor(val_acc))
    return {"val_loss": val_loss, "val_perplexity": perplexity(val_loss), "val_accuracy": val_acc}


def _describe(record: dict) -> str:
    text = f"step {record['step']:6d} | epoch {record['epoch']:.2f} | train loss {record['train_loss']:.4f}"
    if record["val_loss"] is not None:
        text += (f" | val loss {record['val_loss']:.4f} | val ppl {record['val_perplexity']:.3f}"
                 f" | val acc {record['val_accuracy']:.3f}")
    return text + f" | {record['chars_per_sec']:,.0f} chars/s"


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def _write_history(run_dir: Path, result: TrainResult) -> None:
    (run_dir / "history.json").write_text(json.dumps({"evals": result.evals, "step_losses": result.step_losses}))
    with open(run_dir / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result.evals[0]))
        writer.writeheader()
        writer.writerows(result.evals)


def _read_history(run_dir: Path, step: int) -> tuple[list[dict], list[float]]:
    path = run_dir / "history.json"
    if not path.is_file():
        return [], []
    data = json.loads(path.read_text())
    return [e for e in data["evals"] if e["step"] <= step], data["step_losses"][:step]


def _plot_history(run_dir: Path, result: TrainResult) -> None:
    from .plots import loss_curves, save

    if not result.evals:
        return
    curves = {"train": ([e["step"] for e in result.evals], [e["train_loss"] for e in result.evals])}
    if result.evals[0]["val_loss"] is not None:
        curves["validation"] = ([e["step"] for e in result.evals], [e["val_loss"] for e in result.evals])
    save(loss_curves(curves, title="loss (nats/char)"), run_dir / "loss.png")

