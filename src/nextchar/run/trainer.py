"""``nextchar train``: minibatched truncated BPTT on any text, validation, checkpoints with true resume.

One step reads one window (seq_len, B) of the B parallel streams; the hidden state is carried to the
next window and detached there (truncated BPTT), and reset at the start of each pass over the text.
A run folder holds ``last.safetensors``, ``best.safetensors``, ``history.json``, ``history.csv`` and
``loss.png``. Resuming restores model, optimizer, step, carried state and RNG, so an interrupted and
resumed run computes the same losses as one that was never interrupted.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import State, detach_state
from ..config import TRAIN_MODEL_DEFAULTS, ModelConfig, TrainConfig
from ..data import Streams, check_train_text, num_windows, text_streams, window
from ..device import resolve_device
from ..distributed import Distributed
from ..model import CharModel
from ..step import make_optimizer, perplexity, train_step
from ..vocab import Vocab
from .checkpoint import Checkpoint, restore_rng
from .folder import RunClaim, claim, write_history
from .interrupt import StopRequests, TrainingInterrupted
from .progress import Meter, progress_bar
from .resume import check_resume, resumed_configs, text_fingerprint, vocab_and_checkpoint
from .saver import KILL_AT_STEP, Saver, kill_for_test, scalar_writer
from .schedule import NEEDS_LENGTH, Schedule, attach, schedule_of
from .time_budget import RunClock, TimeBudget

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
    budget_seconds: float | None = None
    """The --max-time budget, in seconds (None: none)."""
    stopped_by_budget: bool = False
    """True when the time budget, not the step count, ended the run."""
    seconds: float = 0.0
    """The run's wall time when it ended, summed over resumes."""


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
    clock = RunClock()  # the run's seconds count from here, evaluations included
    dist = Distributed.from_env()
    run_dir = Path(run_dir)
    held = claim(run_dir, resume, overwrite) if dist.is_main else None
    try:
        with StopRequests() if not dist.enabled else nullcontext() as stop:
            session = _start(text, model_config, config, run_dir=run_dir, resume=resume, dist=dist, clock=clock)
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
    streams: Streams
    """This rank's training streams (N, B / world size) and the validation streams."""
    model: CharModel
    trained: torch.nn.Module
    """``model``, or its DDP wrapper under torchrun: what the step runs."""
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    budget: TimeBudget
    result: TrainResult
    step: int = 0
    carry: State | None = None
    """The hidden state carried from window to window (detached)."""

    @property
    def per_epoch(self) -> int:
        return num_windows(self.streams.train, self.config.seq_len)

    def total_steps(self) -> int | None:
        """Where the run ends in steps; under --max-time alone, a decaying schedule's estimated length (None
        before it is estimated, and for a constant or step schedule, which run until the budget)."""
        return _planned_steps(self.config, self.per_epoch) or self.schedule.length


def _planned_steps(config: TrainConfig, per_epoch: int) -> int | None:
    """The run's length in steps from --max-steps or --epochs (one epoch by default); None under --max-time
    alone."""
    if config.max_steps or config.epochs or config.max_time is None:
        return config.max_steps or (config.epochs or 1) * per_epoch
    return None


def _start(text: str, model_config: ModelConfig | dict | None, config: TrainConfig | dict | None, *,
           run_dir: Path, resume: bool, dist: Distributed, clock: RunClock) -> _Session:
    """Check the configs (against the checkpoint on resume), split the text, build the model and optimizer."""
    check_train_text(len(text), "the text")
    vocab, checkpoint = vocab_and_checkpoint(text, run_dir, resume)
    fingerprint = text_fingerprint(text)  # hashed once
    if checkpoint is not None:
        model_config, config = resumed_configs(checkpoint, model_config, config)
        check_resume(checkpoint, model_config, config, fingerprint)
    elif isinstance(model_config, dict) or model_config is None:
        model_config = ModelConfig(vocab_size=len(vocab), **{**TRAIN_MODEL_DEFAULTS, **(model_config or {})})
    if isinstance(config, dict) or config is None:
        config = TrainConfig(**(config or {}))
    if model_config.vocab_size != len(vocab):
        raise ValueError(f"train: model vocab_size {model_config.vocab_size} does not match the text's {len(vocab)}")
    device = dist.device(resolve_device(config.device))
    streams = text_streams(vocab.encode(text), config.batch_size, config.seq_len, config.val_fraction, dist.rank,
                           dist.world_size)
    per_epoch = num_windows(streams.train, config.seq_len)
    schedule = schedule_of(config, per_epoch, _planned_steps(config, per_epoch))

    torch.manual_seed(config.seed)
    model = CharModel(model_config).to(device)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
    session = _Session(model_config, config, fingerprint, device, streams, model, dist.wrap(model), optimizer,
                       schedule, TimeBudget(config.max_time, clock), TrainResult(model, vocab, run_dir))
    if checkpoint is not None:
        _restore(session, checkpoint, dist)
    return session


def _restore(session: _Session, checkpoint: Checkpoint, dist: Distributed) -> None:
    """Weights, optimizer state, step, carried state, RNG, history, the run's seconds and an estimated
    schedule length (when the budget is the one it was estimated for)."""
    session.model.load_state_dict(checkpoint.model_state)
    checkpoint.restore_optimizer(session.optimizer)
    if session.config.weight_decay is not None:
        for group in session.optimizer.param_groups:
            group["weight_decay"] = session.config.weight_decay  # a resume's --weight-decay takes effect
    result = session.result
    session.step, result.best_val_loss = checkpoint.step, checkpoint.best_val_loss
    session.carry = dist.my_carry(checkpoint.carry, session.device)
    restore_rng(checkpoint.rng)
    result.evals, result.step_losses = list(checkpoint.evals), list(checkpoint.step_losses)
    session.budget.clock.before = checkpoint.seconds
    same_budget = checkpoint.train_config.get("max_time") == session.config.max_time
    if session.schedule.length is None and same_budget:
        session.schedule.length = checkpoint.schedule_steps


def _run(session: _Session, *, run_dir: Path, dist: Distributed, stop: StopRequests | None, progress: bool,
         tensorboard: bool, held: RunClaim | None, on_eval: Callable[[dict], None] | None = None) -> TrainResult:
    """Step through the windows from ``session.step``; evaluate and save every ``eval_every`` steps, and once
    more where the time budget ends the run."""
    config, result, budget = session.config, session.result, session.budget
    step, per_epoch = session.step, session.per_epoch
    total = session.total_steps()
    if step and total is not None and total <= step:
        raise ValueError(f"train: the run in {str(run_dir)!r} is at step {step} already, and --max-steps/--epochs "
                         f"ask for {total} steps in all; ask for more to continue it")
    budget.check_left(f"the run in {str(run_dir)!r}")
    if step and dist.is_main:  # a SIGKILL after a checkpoint may have left history.json behind it: rebuild now
        write_history(run_dir, result.evals, result.step_losses)
    board = scalar_writer(run_dir, step) if tensorboard and dist.is_main else None
    saver = Saver(session, run_dir=run_dir, dist=dist, board=board, saved_step=step or None, held=held)
    scheduler = attach(session.optimizer, session.schedule, config.lr, step)
    val_chars = session.streams.val.numel() if session.streams.val is not None else 0
    meter = Meter(progress_bar(total, step, progress and dist.is_main), config.batch_size * config.seq_len, budget,
                  val_chars)
    evaluated, lr = True, session.optimizer.param_groups[0]["lr"]
    # A fresh run takes at least one step, so that it always saves something; then the budget decides.
    while (total is None or step < total) and not (step and _budget_spent(session, meter, dist)):
        epoch, index = divmod(step, per_epoch)
        if index == 0:
            session.carry = None  # each pass over the text starts from a zero state
        x, y = (t.to(session.device) for t in window(session.streams.train, index, config.seq_len))
        _, loss, carry = train_step(session.trained, x, y, _window_loss, session.optimizer, state=session.carry,
                                    clip=config.clip, where=f"step {step + 1}", hint=CLIP_HINT)
        lr = session.optimizer.param_groups[0]["lr"]
        scheduler.step()
        session.carry = detach_state(carry)
        step += 1
        kill_for_test(step, "after-step")
        loss_value = dist.mean(loss)
        result.step_losses.append(loss_value)
        if board is not None:
            board.add_scalar("train/loss_step", loss_value, step)
        meter.stepped(loss_value)
        if budget.measure(step - session.step):
            total = _estimate_length(session, step, meter, dist) or total
        evaluated = step % config.eval_every == 0 or step == total
        if evaluated:
            _evaluate_and_save(session, saver, meter, step, lr, dist, on_eval)
            total = _estimate_length(session, step, meter, dist) or total
        elif stop is not None and stop.signum is not None:
            saver.save(step, epoch, None, best=False, write=meter.bar.write)
        if stop is not None and stop.signum is not None:
            meter.bar.close()
            raise TrainingInterrupted(step, stop.signum)
    result.budget_seconds, result.stopped_by_budget = config.max_time, total is None or step < total
    if not evaluated:  # the budget ended the run between evaluations: evaluate and save where it stopped
        _evaluate_and_save(session, saver, meter, step, lr, dist, on_eval)
    meter.bar.close()
    result.seconds = budget.clock.seconds()
    if dist.is_main:
        _plot_history(run_dir, result)
    dist.barrier()
    return result


def _budget_spent(session: _Session, meter: Meter, dist: Distributed) -> bool:
    """Rank 0's clock decides for every rank (under torchrun the ranks stop at one step)."""
    if session.config.max_time is None:
        return False
    return dist.from_main(float(session.budget.spent(meter.eval_estimate()))) > 0.5


def _estimate_length(session: _Session, step: int, meter: Meter, dist: Distributed) -> int | None:
    """Under --max-time alone, a decaying schedule's length: the steps done and those the rest of the budget
    holds at the speed measured last (the calibration's, then each interval's since an evaluation), set on
    the schedule and returned; None for any other run. Estimated again at each evaluation, so a slow start
    does not end the schedule early."""
    config, budget = session.config, session.budget
    if session.schedule.name not in NEEDS_LENGTH or _planned_steps(config, session.per_epoch) is not None:
        return None
    if session.schedule.length is not None and step >= session.schedule.length:
        return session.schedule.length  # the schedule has ended: the run ends here, not a few steps on
    left = budget.steps_left(config.eval_every, meter.eval_estimate())
    session.schedule.length = step + int(dist.from_main(left))  # rank 0's estimate: one schedule for all ranks
    meter.bar.total = session.schedule.length
    return session.schedule.length


def _evaluate_and_save(session: _Session, saver: Saver, meter: Meter, step: int, lr: float, dist: Distributed,
                       on_eval: Callable[[dict], None] | None) -> None:
    """Validate, record (the train loss since the last evaluation, speed, time, lr) and save ``last``
    (and ``best`` when the validation loss improved)."""
    result, per_epoch = session.result, session.per_epoch
    epoch, index = divmod(step - 1, per_epoch)
    since = result.evals[-1]["step"] if result.evals else 0
    record = {"step": step, "epoch": epoch + (index + 1) / per_epoch,
              "train_loss": sum(result.step_losses[since:]) / (step - since), "chars_per_sec": meter.chars_per_sec(),
              "lr": lr}
    session.budget.step_seconds = meter.seconds_per_step()  # this interval's, evaluations left out
    started = time.perf_counter()
    record.update(_validate(session.model, session.streams.val, session.config, session.device, dist))
    session.budget.eval_seconds = time.perf_counter() - started
    record["seconds"] = session.budget.clock.seconds()
    improved = record.get("val_loss") is not None and (
        result.best_val_loss is None or record["val_loss"] < result.best_val_loss)
    saver.save(step, epoch, record, best=improved or session.streams.val is None, write=meter.bar.write)
    if on_eval is not None:
        on_eval(record)
    meter.restart()


def _window_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over a window: logits (L, B, V), target (L, B)."""
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def _validate(model, val_streams, config, device, dist) -> dict:
    if val_streams is None:
        return {"val_loss": None, "val_bpc": None, "val_perplexity": None, "val_accuracy": None}
    val_loss, val_acc = evaluate(model, val_streams, config.seq_len, device)
    val_loss, val_acc = dist.mean(torch.tensor(val_loss)), dist.mean(torch.tensor(val_acc))
    ppl = perplexity(val_loss)
    return {"val_loss": val_loss, "val_bpc": val_loss / math.log(2),
            "val_perplexity": ppl if math.isfinite(ppl) else None, "val_accuracy": val_acc}


def _plot_history(run_dir: Path, result: TrainResult) -> None:
    from ..plots import loss_curves, save

    if not result.evals:
        return
    curves = {"train": ([e["step"] for e in result.evals], [e["train_loss"] for e in result.evals])}
    if result.evals[0]["val_loss"] is not None:
        curves["validation"] = ([e["step"] for e in result.evals], [e["val_loss"] for e in result.evals])
    save(loss_curves(curves, title="loss (nats/char)"), run_dir / "loss.png")


__all__ = ["KILL_AT_STEP", "TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "train"]

