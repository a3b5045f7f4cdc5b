"""The memory a run will need, checked before any work: a run that cannot fit stops at once with the
numbers and the way out, instead of reaching a MemoryError (or the kernel's OOM killer) hours in.

The limit is half of this machine's memory, or ``NEXTCHAR_MEMORY_GB`` when set.
"""
from __future__ import annotations

import os

MEMORY_FRACTION = 0.5
"""Share of the machine's physical memory one run may plan to use."""


class MemoryBudgetError(ValueError):
    """A run that would need more memory than the limit."""


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limit() -> int:
    """Bytes a run may plan to use: ``NEXTCHAR_MEMORY_GB`` GiB when set, else half the physical memory."""
    given = os.environ.get("NEXTCHAR_MEMORY_GB")
    if given:
        try:
            return int(float(given) * 2**30)
        except ValueError:
            raise MemoryBudgetError(f"memory: NEXTCHAR_MEMORY_GB must be a number of GiB, got {given!r}") from None
    return int(physical_memory() * MEMORY_FRACTION)


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:,.1f} MiB"


def check_memory(need: int, what: str, way_out: str) -> None:
    """Refuse ``what`` when it needs more than :func:`memory_limit`, naming both numbers and ``way_out``."""
    limit = memory_limit()
    if need > limit:
        raise MemoryBudgetError(f"{what} needs about {gib(need)} of memory, more than the {gib(limit)} a run may use "
                                f"(half of this machine's {gib(physical_memory())}, or NEXTCHAR_MEMORY_GB); {way_out}")
