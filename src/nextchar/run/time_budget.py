"""A run's wall-time budget (``--max-time``) and its clock, summed over resumes.

The clock starts when ``train`` is called and adds the seconds the checkpoint recorded, so ``seconds`` in
``history.json`` is the wall time since the run began, evaluations included, over every resume. The
budget ends training early enough for the closing evaluation and save to fit inside it: a step is not
started when the budget cannot hold it and an evaluation (the last one measured, or an estimate before
the first). Under ``--max-time`` alone a decaying schedule needs its length in steps: it is estimated
after :data:`CALIBRATION_STEPS` steps from their measured speed, then again at each evaluation.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

CALIBRATION_STEPS = 10
"""Steps timed (after the first, which warms up) before a budget's length in steps is estimated."""
FORWARD_SHARE = 0.35
"""An evaluation's cost per character against a training step's (forward only, against forward, backward
and the optimizer: ~1/3), for the estimate before the first evaluation is timed."""
SAFETY = 0.97
"""The share of the estimated steps a schedule is laid over, so that a slower minute still ends it."""
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """``90``, ``90s``, ``1.5m``, ``2h`` -> seconds (> 0, finite)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text))
    if not match or float(match[1]) <= 0:
        raise ValueError(f"train: --max-time must be a duration > 0 in seconds, or a number with s, m or h "
                         f"(90, 90s, 1.5m, 2h), got {str(text)!r}")
    return float(match[1]) * _UNITS[match[2]]


def format_seconds(seconds: float) -> str:
    """``75.3`` -> ``1m15s``; under a minute ``42.0s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{rest:02d}s" if minutes >= 60 else f"{minutes}m{rest:02d}s"


@dataclass
class RunClock:
    """Seconds since the run began: those recorded before this process, plus this process's."""

    before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.started


@dataclass
class TimeBudget:
    """``max_time`` seconds for the whole run (None: no budget), watched step by step."""

    max_time: float | None
    clock: RunClock
    eval_seconds: float | None = None
    """How long the last evaluation took (None before the first)."""
    step_seconds: float | None = None
    """A step's time: measured over the calibration steps, then over each interval between evaluations."""
    _mark: tuple[int, float] | None = None

    def check_left(self, where: str) -> None:
        """Refuse a resume whose run has already spent the budget."""
        if self.max_time is not None and self.clock.before >= self.max_time:
            raise ValueError(f"train: {where} has run {self.clock.before:.1f} s already, and --max-time asks for "
                             f"{self.max_time:g} s in all; ask for more to continue it")

    def measure(self, steps_done: int) -> bool:
        """Called after each step (``steps_done`` in this process): True once, when the calibration ends."""
        if steps_done == 1:
            self._mark = (1, time.perf_counter())  # the first step warms up: timed from its end
        elif self._mark is not None and steps_done == self._mark[0] + CALIBRATION_STEPS:
            self.step_seconds = (time.perf_counter() - self._mark[1]) / CALIBRATION_STEPS
            self._mark = None
            return True
        return False

    def steps_left(self, eval_every: int, evaluation: float) -> int:
        """Steps the rest of the budget holds, evaluations (``evaluation`` seconds each) every ``eval_every``
        steps and a last one included."""
        assert self.max_time is not None and self.step_seconds is not None
        left = self.max_time - self.clock.seconds() - evaluation
        return max(0, int(SAFETY * left / (self.step_seconds + evaluation / eval_every)))

    def spent(self, evaluation: float) -> bool:
        """True when the budget cannot hold one more step and the closing evaluation (``evaluation`` seconds)."""
        if self.max_time is None:
            return False
        return self.clock.seconds() + (self.step_seconds or 0.0) + evaluation >= self.max_time
