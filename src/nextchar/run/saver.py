"""Saving a run's state: finite checks, then ``best`` (when improved), then ``last``, then the history view.

That order is the run folder's promise: nothing non-finite is saved, a kill between the two checkpoints
never leaves ``last`` ahead of ``best``, and ``history.json`` is a view of ``last`` written after it.
"""
from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..distributed import Distributed
from ..step import NonFiniteLossError
from .checkpoint import Checkpoint, rng_states, save_checkpoint
from .folder import RunClaim, write_history

KILL_AT_STEP = "NEXTCHAR_TEST_KILL_AT_STEP"
"""Fault injection for the tests: ``N`` makes the trainer SIGKILL itself right after step N's optimizer step,
before its evaluation or save; ``N:after-best`` between writing step N's best.safetensors and its
last.safetensors; ``N:SIGINT`` or ``N:SIGTERM`` sends itself that signal right after step N (as Ctrl-C or a
scheduler would). A signal lands at a known point however fast the machine is."""


def kill_for_test(step: int, point: str) -> None:
    at, _, what = os.environ.get(KILL_AT_STEP, "").partition(":")
    if at != str(step):
        return
    if what in ("SIGINT", "SIGTERM") and point == "after-step":
        os.kill(os.getpid(), getattr(signal, what))
    elif what == point or (not what and point == "after-step"):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Saver:
    """Saves the state of ``session`` (the trainer's ``_Session``) into ``run_dir``."""

    session: Any
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
        check_finite_state(session.model, record, step, self.saved_step)
        if record is not None:
            result.evals.append(record)
            if best and record.get("val_loss") is not None:
                result.best_val_loss = record["val_loss"]
        full_carry = self.dist.gather_carry(session.carry)
        if not self.dist.is_main:
            self.saved_step = step  # rank 0 saves it
            return
        if record is not None:
            write(describe(record))
        snapshot = Checkpoint(
            model_config=session.model_config, vocab=result.vocab, model_state=session.model.state_dict(),
            step=step, epoch=epoch, best_val_loss=result.best_val_loss, train_config=asdict(session.config),
            optimizer=session.optimizer.state_dict(), optimizer_name=session.config.optimizer, rng=rng_states(),
            carry=full_carry, evals=result.evals, step_losses=result.step_losses, text=session.fingerprint,
            seconds=session.budget.clock.seconds(), schedule_steps=session.schedule.length)
        if best and record is not None:  # best first: a kill between the two never leaves last ahead of best
            save_checkpoint(self.run_dir / "best.safetensors", snapshot)
            kill_for_test(step, "after-best")
        save_checkpoint(self.run_dir / "last.safetensors", snapshot)
        write_history(self.run_dir, result.evals, result.step_losses)
        if self.held is not None:
            self.held.saved()
        self.saved_step = step
        if self.board is not None and record is not None:
            self._board_scalars(record, step)

    def _board_scalars(self, record: dict, step: int) -> None:
        for key in ("train_loss", "val_loss", "val_bpc", "val_perplexity", "val_accuracy", "chars_per_sec", "lr"):
            if record.get(key) is not None:
                self.board.add_scalar(f"eval/{key}", record[key], step)
        self.board.flush()


def check_finite_state(model: torch.nn.Module, record: dict | None, step: int, last_saved: int | None) -> None:
    """Nothing non-finite is ever saved: the weights and this evaluation's metrics are checked first."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    metrics = [k for k, v in (record or {}).items() if isinstance(v, float) and not math.isfinite(v)]
    if bad or metrics:
        what = f"weights {bad[:3]}" if bad else f"{', '.join(metrics)}"
        kept = f"last.safetensors keeps step {last_saved}" if last_saved else "nothing was saved"
        raise NonFiniteLossError(f"train: {what} became NaN or infinite at step {step}; {kept}; try a lower "
                                 "learning rate or gradient clipping (--clip)")


def scalar_writer(run_dir: Path, step: int):
    """TensorBoard's SummaryWriter in run_dir/tensorboard; on resume, events after ``step`` are purged."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("train: --tensorboard needs the tensorboard package: "
                         "pip install 'nextchar[tensorboard]'") from None
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=step or None)


def describe(record: dict) -> str:
    """An evaluation's line: ``step 200 | epoch 0.82 | 12.4s | train loss 2.1 | val loss 2.0 | 2.885 bpc ...``."""
    from .time_budget import format_seconds

    text = f"step {record['step']:6d} | epoch {record['epoch']:.2f}"
    if record.get("seconds") is not None:
        text += f" | {format_seconds(record['seconds'])}"
    text += f" | train loss {record['train_loss']:.4f}"
    if record["val_loss"] is not None:
        text += (f" | val loss {record['val_loss']:.4f} | {record['val_bpc']:.3f} bpc"
                 f" | val ppl {record['val_perplexity'] or math.inf:.3f} | val acc {record['val_accuracy']:.3f}")
    return text + f" | {record['chars_per_sec']:,.0f} chars/s"
