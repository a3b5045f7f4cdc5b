"""What a run shows as it goes: the progress bar (loss, bits per character, chars/s, the run's elapsed time)
and the speed since the last evaluation, which the time budget also reads."""
from __future__ import annotations

import math
import time

from .time_budget import FORWARD_SHARE, TimeBudget, format_seconds


def progress_bar(total: int | None, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


class Meter:
    """The bar, and the steps and time since the last evaluation (``restart``)."""

    def __init__(self, bar, chars_per_step: int, budget: TimeBudget, val_chars: int) -> None:
        self.bar, self.chars_per_step, self.budget, self.val_chars = bar, chars_per_step, budget, val_chars
        self.restart()

    def restart(self) -> None:
        self.started, self.steps = time.perf_counter(), 0

    def seconds_per_step(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9) / max(self.steps, 1)

    def chars_per_sec(self) -> float:
        return self.chars_per_step / self.seconds_per_step()

    def eval_estimate(self) -> float:
        """Seconds an evaluation takes: the last one's, else its characters at a forward pass's share of a
        training step's cost (0 before any step is timed, or without validation text)."""
        if self.budget.eval_seconds is not None or not self.val_chars:
            return self.budget.eval_seconds or 0.0
        return FORWARD_SHARE * (self.budget.step_seconds or 0.0) * self.val_chars / self.chars_per_step

    def stepped(self, loss: float) -> None:
        self.steps += 1
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}", bpc=f"{loss / math.log(2):.3f}",
                             chars_s=f"{self.chars_per_sec():,.0f}",
                             elapsed=format_seconds(self.budget.clock.seconds()))
