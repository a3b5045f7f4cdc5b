"""The exam's five true/false claims, each an experiment that measures its evidence.

>>> from nextchar.exam.claims import run_claim
>>> result = run_claim(4)
>>> result.verdict, result.evidence["abcd"]
"""
from __future__ import annotations

from collections.abc import Callable

from .counting import claim_call_vs_forward, claim_parameter_counts
from .losses import claim_cross_entropy_only
from .memory import QUICK, MemoryBudget, claim_long_term_memory
from .recurrence import claim_needs_recurrence
from .result import ClaimResult

EXPECTED = {1: False, 2: True, 3: True, 4: False, 5: False}
"""The exam's answer key; the experiments read their verdicts from measurements, and tests compare."""

# Each claim at two budgets: 'full' (the CLI's default, about a minute or two for claim 1) and 'quick'.
_RUNNERS: dict[int, dict[str, Callable[[str], ClaimResult]]] = {
    1: {"full": lambda d: claim_long_term_memory(MemoryBudget(), d),
        "quick": lambda d: claim_long_term_memory(QUICK, d)},
    2: {"full": lambda d: claim_parameter_counts(), "quick": lambda d: claim_parameter_counts()},
    3: {"full": lambda d: claim_call_vs_forward(), "quick": lambda d: claim_call_vs_forward()},
    4: {"full": lambda d: claim_needs_recurrence(device=d), "quick": lambda d: claim_needs_recurrence(120, device=d)},
    5: {"full": lambda d: claim_cross_entropy_only(device=d),
        "quick": lambda d: claim_cross_entropy_only(60, seeds=8, device=d)},
}
BUDGETS = ("full", "quick")


def run_claim(number: int, budget: str = "full", device: str = "cpu") -> ClaimResult:
    """Run claim ``number``'s experiment (1-5) at ``budget`` ('full' or 'quick') on ``device``.

    Claims 2 and 3 are about modules' API and run on the CPU whatever the device.
    """
    if number not in _RUNNERS:
        raise ValueError(f"claims: claim must be one of {tuple(_RUNNERS)}, got {number!r}")
    if budget not in BUDGETS:
        raise ValueError(f"claims: budget must be one of {BUDGETS}, got {budget!r}")
    from ...device import resolve_device

    return _RUNNERS[number][budget](str(resolve_device(device)))


__all__ = ["BUDGETS", "EXPECTED", "ClaimResult", "MemoryBudget", "run_claim", "claim_long_term_memory",
           "claim_parameter_counts", "claim_call_vs_forward", "claim_needs_recurrence", "claim_cross_entropy_only"]
