"""Ctrl-C (SIGINT) and SIGTERM during training: finish the step, save, exit with the signal's code.

The first signal only asks the run to stop: the step in flight completes, ``last`` is saved at that
step, and :class:`TrainingInterrupted` carries the step and the exit code (130 for SIGINT, 143 for
SIGTERM) up to the command, which prints how to resume. A second signal stops at once.
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """The run stopped on a signal after saving ``last`` at ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        super().__init__(f"train: stopped by {signal.Signals(signum).name} at step {step}; last.safetensors saved")
        self.step, self.signum = step, signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequests:
    """While active (in the main thread), SIGINT/SIGTERM set :attr:`signum` instead of killing the process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second signal: stop now
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
