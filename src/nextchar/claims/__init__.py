"""The exam's five true/false claims (SPEC.md §2), each an experiment that measures its evidence.

>>> from nextchar.claims import run_claim
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
_RUNNERS: dict[int, dict[str, Callable[[], ClaimResult]]] = {
    1: {"full": lambda: claim_long_term_memory(MemoryBudget()), "quick": lambda: claim_long_term_memory(QUICK)},
    2: {"full": claim_parameter_counts, "quick": claim_parameter_counts},
    3: {"full": claim_call_vs_forward, "quick": claim_call_vs_forward},
    4: {"full": claim_needs_recurrence, "quick": lambda: claim_needs_recurrence(epochs=120)},
    5: {"full": claim_cross_entropy_only, "quick": lambda: claim_cross_entropy_only(epochs=60)},
}
BUDGETS = ("full", "quick")


def run_claim(number: int, budget: str = "full") -> ClaimResult:
    """Run claim ``number``'s experiment (1-5) at ``budget`` ('full' or 'quick')."""
    if number not in _RUNNERS:
        raise ValueError(f"claims: claim must be one of {tuple(_RUNNERS)}, got {number!r}")
    if budget not in BUDGETS:
        raise ValueError(f"claims: budget must be one of {BUDGETS}, got {budget!r}")
    return _RUNNERS[number][budget]()


__all__ = ["BUDGETS", "EXPECTED", "ClaimResult", "MemoryBudget", "run_claim", "claim_long_term_memory",
           "claim_parameter_counts", "claim_call_vs_forward", "claim_needs_recurrence", "claim_cross_entropy_only"]
