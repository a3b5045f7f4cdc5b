"""``nextchar train``: minibatched truncated BPTT on any text, validation, checkpoints with true resume.

One step reads one window (seq_len, B) of the B parallel streams; the hidden state is carried to the
next window and detached there (truncated BPTT), and reset at the start of each pass over the text.
A run folder holds ``last.safetensors``, ``best.safetensors``, ``history.json``, ``history.csv`` and
``loss.png``. Resuming restores model, optimizer, step, carried state and RNG, so an interrupted and
resumed run computes the same losses as one that was never interrupted.
"""
from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import State, detach_state
from ..config import ModelConfig, TrainConfig
from ..data import batchify, num_windows, shard_streams, split_text, window
from ..device import resolve_device
from ..distributed import Distributed
from ..model import CharModel
from ..step import NonFiniteLossError, make_optimizer, perplexity, train_step
from ..vocab import Vocab
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    restore_rng,
    rng_states,
    save_checkpoint,
)
from .folder import RunClaim, claim, read_history, write_history
from .interrupt import StopRequests, TrainingInterrupted
from .resume import check_resume, resumed_configs, text_fingerprint

CLIP_HINT = "try a lower learning rate (--lr) or gradient clipping (--clip)"


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
    if checkpoint.step_losses is None:  # written before checkpoints held the history: take history.json's
        checkpoint.evals, checkpoint.step_losses = _legacy_history(run_dir, checkpoint.step)
    if len(checkpoint.step_losses) != checkpoint.step:
        raise CheckpointError(f"checkpoint: {str(run_dir / 'last.safetensors')!r} holds {len(checkpoint.step_losses)} "
                              f"step losses for step {checkpoint.step}")
    return checkpoint.vocab, checkpoint


def _legacy_history(run_dir: Path, step: int) -> tuple[list[dict], list[float]]:
    """history.json cut to the checkpoint's step; refused when it holds fewer losses than that."""
    history = read_history(run_dir)
    if len(history["step_losses"]) < step:
        raise CheckpointError(f"checkpoint: {str(run_dir / 'history.json')!r} holds {len(history['step_losses'])} "
                              f"step losses for the checkpoint's step {step}; this run cannot be resumed exactly")
    return [e for e in history["evals"] if e["step"] <= step], history["step_losses"][:step]


def _val_streams(val_encoded: Tensor, config: TrainConfig) -> Tensor | None:
    """Validation streams: as many as fit (at most batch_size); None when there is no validation text."""
    if val_encoded.numel() == 0:
        return None
    streams = min(config.batch_size, val_encoded.numel() // (config.seq_len + 1))
    if streams < 1:
        raise ValueError(f"data: the validation text has {val_encoded.numel()} characters, fewer than seq_len + 1 = "
                         f"{config.seq_len + 1}; raise --val-fraction, lower --seq-len, or use --val-fraction 0")
    return batchify(val_encoded, streams, config.seq_len, "validation text")


def train(text: str, model_config: ModelConfig | dict | None, config: TrainConfig | dict | None,
          run_dir: str | Path, resume: bool = False, progress: bool = True, overwrite: bool = False,
          tensorboard: bool = False, on_eval: Callable[[dict], None] | None = None) -> TrainResult:
    """Train a character model on ``text`` into the run folder ``run_dir``; see the module docstring.

    ``model_config`` may omit vocab_size (a dict). On resume, None or a dict of only what changes takes the
    checkpoint's settings; what defines the model or the data must match it (``resume.py``). A folder that
    holds another run is refused unless ``overwrite``. Raises :class:`TrainingInterrupted` after saving
    ``last`` when SIGINT or SIGTERM arrives. ``tensorboard`` also writes the scalars as TensorBoard event
    files in ``run_dir/tensorboard`` (needs the ``tensorboard`` package). ``on_eval(record)`` is called after
    each evaluation has been saved (``nextchar tune`` reports it to its trial; raising stops the run there).
    """
    if str(run_dir) == "":
        raise ValueError("train: --out is empty; give the run folder's name")
    dist = Distributed.from_env()
    run_dir = Path(run_dir)
    held = claim(run_dir, resume, overwrite) if dist.is_main else None
    try:
        with StopRequests() if not dist.enabled else nullcontext() as stop:
            session = _start(text, model_config, config, run_dir=run_dir, resume=resume, dist=dist)
            return _run(session, run_dir=run_dir, dist=dist, stop=stop, progress=progress, tensorboard=tensorboard,
                        held=held, on_eval=on_eval)
    finally:
        if held is not None:
            held.release()


@dataclass
class _Session:
    """What one run trains with, set up fresh or restored from the checkpoint."""

    model_config: ModelConfig
    config: TrainConfig
    fingerprint: dict
    """The training text's length and SHA-256: checked on resume, saved in every checkpoint."""
    device: torch.device
    streams: Tensor
    """This rank's training streams, (N, B / world size) character indices."""
    val_streams: Tensor | None
    model: CharModel
    trained: torch.nn.Module
    """``model``, or its DDP wrapper under torchrun: what the step runs."""
    optimizer: torch.optim.Optimizer
    result: TrainResult
    step: int = 0
    carry: State | None = None
    """The hidden state carried from window to window (detached)."""


def _start(text: str, model_config: ModelConfig | dict | None, config: TrainConfig | dict | None, *,
           run_dir: Path, resume: bool, dist: Distributed) -> _Session:
    """Check the configs (against the checkpoint on resume), split the text, build the model and optimizer."""
    vocab, checkpoint = _prepare_vocab(text, run_dir, resume)
    fingerprint = text_fingerprint(text)  # hashed once
    if checkpoint is not None:
        model_config, config = resumed_configs(checkpoint, model_config, config)
        check_resume(checkpoint, model_config, config, fingerprint)
    elif isinstance(model_config, dict) or model_config is None:
        model_config = ModelConfig(vocab_size=len(vocab), **(model_config or {}))
    if isinstance(config, dict) or config is None:
        config = TrainConfig(**(config or {}))
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
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    session = _Session(model_config, config, fingerprint, device, streams, val_streams, model, dist.wrap(model),
                       optimizer, TrainResult(model, vocab, run_dir))
    if checkpoint is not None:
        _restore(session, checkpoint, dist)
    return session


def _restore(session: _Session, checkpoint: Checkpoint, dist: Distributed) -> None:
    """Weights, optimizer state (at the lr asked for now), step, carried state, RNG and history."""
    session.model.load_state_dict(checkpoint.model_state)
    checkpoint.restore_optimizer(session.optimizer)
    for group in session.optimizer.param_groups:
        group["lr"] = session.config.lr  # --lr on resume takes effect (the saved groups hold the old one)
    result = session.result
    session.step, result.best_val_loss = checkpoint.step, checkpoint.best_val_loss
    session.carry = dist.my_carry(checkpoint.carry, session.device)
    restore_rng(checkpoint.rng)
    result.evals, result.step_losses = list(checkpoint.evals), list(checkpoint.step_losses)


def _run(session: _Session, *, run_dir: Path, dist: Distributed, stop: StopRequests | None, progress: bool,
         tensorboard: bool, held: RunClaim | None, on_eval: Callable[[dict], None] | None = None) -> TrainResult:
    """Step through the windows from ``session.step``; evaluate and save every ``eval_every`` steps."""
    config, result = session.config, session.result
    step = session.step
    per_epoch = num_windows(session.streams, config.seq_len)
    total_steps = config.max_steps or config.epochs * per_epoch
    if step and total_steps <= step:
        raise ValueError(f"train: the run in {str(run_dir)!r} is at step {step} already, and --max-steps/--epochs "
                         f"ask for {total_steps} steps in all; ask for more to continue it")
    if step and dist.is_main:  # a SIGKILL after a checkpoint may have left history.json behind it: rebuild now
        write_history(run_dir, result.evals, result.step_losses)
    board = _scalar_writer(run_dir, step) if tensorboard and dist.is_main else None
    saver = _Saver(session, run_dir=run_dir, dist=dist, board=board, saved_step=step or None, held=held)
    chars_per_step = config.batch_size * config.seq_len
    bar = _progress_bar(total_steps, step, progress and dist.is_main)
    interval_start, interval_steps = time.perf_counter(), 0
    while step < total_steps:
        epoch, index = divmod(step, per_epoch)
        if index == 0:
            session.carry = None  # each pass over the text starts from a zero state
        x, y = (t.to(session.device) for t in window(session.streams, index, config.seq_len))
        _, loss, carry = train_step(session.trained, x, y, _window_loss, session.optimizer, state=session.carry,
                                    clip=config.clip, where=f"step {step + 1}", hint=CLIP_HINT)
        session.carry = detach_state(carry)
        step += 1
        _kill_for_test(step, "after-step")
        loss_value = dist.mean(loss)
        result.step_losses.append(loss_value)
        if board is not None:
            board.add_scalar("train/loss_step", loss_value, step)
        interval_steps += 1
        chars_per_sec = chars_per_step * interval_steps / max(time.perf_counter() - interval_start, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", chars_s=f"{chars_per_sec:,.0f}")
        if step % config.eval_every == 0 or step == total_steps:
            since = result.evals[-1]["step"] if result.evals else 0  # the train loss since the last eval
            record = {"step": step, "epoch": epoch + (index + 1) / per_epoch,
                      "train_loss": sum(result.step_losses[since:]) / (step - since), "chars_per_sec": chars_per_sec}
            record.update(_validate(session.model, session.val_streams, config, session.device, dist))
            improved = record.get("val_loss") is not None and (
                result.best_val_loss is None or record["val_loss"] < result.best_val_loss)
            saver.save(step, epoch, record, best=improved or session.val_streams is None, write=bar.write)
            if on_eval is not None:
                on_eval(record)
            interval_start, interval_steps = time.perf_counter(), 0
        elif stop is not None and stop.signum is not None:
            saver.save(step, epoch, None, best=False, write=bar.write)
        if stop is not None and stop.signum is not None:
            bar.close()
            raise TrainingInterrupted(step, stop.signum)
    bar.close()
    if dist.is_main:
        _plot_history(run_dir, result)
    dist.barrier()
    return result


@dataclass
class _Saver:
    """Saves a run's state: finite checks, then last (and best), then the history view, in that order."""

    session: _Session
    run_dir: Path
    dist: Distributed
    board: Any = None
    """TensorBoard's SummaryWriter, or None."""
    saved_step: int | None = None
    """The step last.safetensors holds (None before the first save)."""
    held: RunClaim | None = None
    """The run folder's claim: told when the first checkpoint is saved (an --overwritten run can go then)."""

    def save(self, step: int, epoch: int, record: dict | None, *, best: bool, write: Callable[[str], None]) -> None:
        """``record``: this step's evaluation (None when saving on a signal between evaluations)."""
        session, result = self.session, self.session.result
        _check_finite_state(session.model, record, step, self.saved_step)
        if record is not None:
            result.evals.append(record)
            if best and record.get("val_loss") is not None:
                result.best_val_loss = record["val_loss"]
        full_carry = self.dist.gather_carry(session.carry)
        if not self.dist.is_main:
            self.saved_step = step  # rank 0 saves it
            return
        if record is not None:
            write(_describe(record))
        snapshot = Checkpoint(
            model_config=session.model_config, vocab=result.vocab, model_state=session.model.state_dict(),
            step=step, epoch=epoch, best_val_loss=result.best_val_loss, train_config=asdict(session.config),
            optimizer=session.optimizer.state_dict(), optimizer_name=session.config.optimizer, rng=rng_states(),
            carry=full_carry, evals=result.evals, step_losses=result.step_losses, text=session.fingerprint)
        if best and record is not None:  # best first: a kill between the two never leaves last ahead of best
            save_checkpoint(self.run_dir / "best.safetensors", snapshot)
            _kill_for_test(step, "after-best")
        save_checkpoint(self.run_dir / "last.safetensors", snapshot)
        write_history(self.run_dir, result.evals, result.step_losses)
        if self.held is not None:
            self.held.saved()
        self.saved_step = step
        if self.board is not None and record is not None:
            self._board_scalars(record, step)

    def _board_scalars(self, record: dict, step: int) -> None:
        for key in ("train_loss", "val_loss", "val_perplexity", "val_accuracy", "chars_per_sec"):
            if record.get(key) is not None:
                self.board.add_scalar(f"eval/{key}", record[key], step)
        self.board.add_scalar("eval/lr", self.session.optimizer.param_groups[0]["lr"], step)
        self.board.flush()


KILL_AT_STEP = "NEXTCHAR_TEST_KILL_AT_STEP"
"""Fault injection for the tests: ``N`` makes the trainer SIGKILL itself right after step N's optimizer step,
before its evaluation or save; ``N:after-best`` between writing step N's best.safetensors and its
last.safetensors. A kill lands at a known point however fast the machine is."""


def _kill_for_test(step: int, point: str) -> None:
    wanted = {f"{step}:{point}"} | ({str(step)} if point == "after-step" else set())
    if os.environ.get(KILL_AT_STEP) in wanted:
        os.kill(os.getpid(), signal.SIGKILL)


def _scalar_writer(run_dir: Path, step: int):
    """TensorBoard's SummaryWriter in run_dir/tensorboard; on resume, events after ``step`` are purged."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("train: --tensorboard needs the tensorboard package: "
                         "pip install 'nextchar[tensorboard]'") from None
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=step or None)


def _check_finite_state(model: CharModel, record: dict | None, step: int, last_saved: int | None) -> None:
    """Nothing non-finite is ever saved: the weights and this evaluation's metrics are checked first."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    metrics = [k for k, v in (record or {}).items() if isinstance(v, float) and not math.isfinite(v)]
    if bad or metrics:
        what = f"weights {bad[:3]}" if bad else f"{', '.join(metrics)}"
        kept = f"last.safetensors keeps step {last_saved}" if last_saved else "nothing was saved"
        raise NonFiniteLossError(f"train: {what} became NaN or infinite at step {step}; {kept}; try a lower "
                                 "learning rate or gradient clipping (--clip)")


def _window_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over a window: logits (L, B, V), target (L, B)."""
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def _validate(model, val_streams, config, device, dist) -> dict:
    if val_streams is None:
        return {"val_loss": None, "val_perplexity": None, "val_accuracy": None}
    val_loss, val_acc = evaluate(model, val_streams, config.seq_len, device)
    val_loss, val_acc = dist.mean(torch.tensor(val_loss)), dist.mean(torch.tensor(val_acc))
    ppl = perplexity(val_loss)
    return {"val_loss": val_loss, "val_perplexity": ppl if math.isfinite(ppl) else None, "val_accuracy": val_acc}


def _describe(record: dict) -> str:
    text = f"step {record['step']:6d} | epoch {record['epoch']:.2f} | train loss {record['train_loss']:.4f}"
    if record["val_loss"] is not None:
        text += (f" | val loss {record['val_loss']:.4f} | val ppl {record['val_perplexity'] or math.inf:.3f}"
                 f" | val acc {record['val_accuracy']:.3f}")
    return text + f" | {record['chars_per_sec']:,.0f} chars/s"


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def _plot_history(run_dir: Path, result: TrainResult) -> None:
    from ..plots import loss_curves, save

    if not result.evals:
        return
    curves = {"train": ([e["step"] for e in result.evals], [e["train_loss"] for e in result.evals])}
    if result.evals[0]["val_loss"] is not None:
        curves["validation"] = ([e["step"] for e in result.evals], [e["val_loss"] for e in result.evals])
    save(loss_curves(curves, title="loss (nats/char)"), run_dir / "loss.png")


__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "train"]

