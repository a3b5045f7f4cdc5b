"""The memory a run will need, checked before any work: a run that cannot fit stops at once with the
numbers and the way out, instead of reaching a MemoryError (or the kernel's OOM killer) hours in.

The limit is half of the memory this process can have: the smallest of the machine's physical memory and
its cgroup's limit (a container's), and no more than what ``ulimit -v`` (RLIMIT_AS) leaves of the address
space; or ``NEXTCHAR_MEMORY_GB`` when set.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

MEMORY_FRACTION = 0.5
"""Share of the memory this process can have that one run may plan to use."""
CGROUP_ROOT = Path("/sys/fs/cgroup")


class MemoryBudgetError(ValueError):
    """A run that would need more memory than the limit."""


class MemoryLimit(NamedTuple):
    bytes: int
    why: str
    """Where the number comes from, for the refusal."""


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cgroup_memory(root: Path = CGROUP_ROOT, membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """The tightest memory limit of this process's cgroup and its ancestors (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``), or None when there is none. A container often sees its own cgroup as the
    root of the mount, so the mount's top files are read too."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    candidates = [root / "memory.max", root / "memory" / "memory.limit_in_bytes"]
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers and "memory" not in controllers.split(","):
            continue  # a v1 hierarchy of other controllers
        base, name = (root, "memory.max") if controllers == "" else (root / "memory", "memory.limit_in_bytes")
        folder = base / path.lstrip("/")
        while folder != base and base in folder.parents:
            candidates.append(folder / name)
            folder = folder.parent
    limits = []
    for candidate in candidates:
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves of the address space beyond what this process maps now; None
    without a limit."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return max(0, soft - mapped)


def memory_limit() -> int:
    """Bytes a run may plan to use (:func:`current_limit`)."""
    return current_limit().bytes


def current_limit() -> MemoryLimit:
    """``NEXTCHAR_MEMORY_GB`` GiB when set, else half the smaller of physical memory and the cgroup's limit,
    capped by what RLIMIT_AS leaves."""
    given = os.environ.get("NEXTCHAR_MEMORY_GB")
    if given:
        try:
            return MemoryLimit(int(float(given) * 2**30), "NEXTCHAR_MEMORY_GB")
        except ValueError:
            raise MemoryBudgetError(f"memory: NEXTCHAR_MEMORY_GB must be a number of GiB, got {given!r}") from None
    physical, cgroup = physical_memory(), cgroup_memory()
    if cgroup is not None and cgroup < physical:
        limit = MemoryLimit(int(cgroup * MEMORY_FRACTION), f"half of this container's {gib(cgroup)} cgroup limit")
    else:
        limit = MemoryLimit(int(physical * MEMORY_FRACTION), f"half of this machine's {gib(physical)}")
    left = address_space_left()
    if left is not None and left < limit.bytes:
        return MemoryLimit(left, f"what ulimit -v leaves of the address space, {gib(left)}")
    return limit


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:,.1f} MiB"


def check_memory(need: int, what: str, way_out: str) -> None:
    """Refuse ``what`` when it needs more than :func:`memory_limit`, naming both numbers and ``way_out``."""
    limit = current_limit()
    if need > limit.bytes:
        raise MemoryBudgetError(f"{what} needs about {gib(need)} of memory, more than the {gib(limit.bytes)} a run "
                                f"may use ({limit.why}; NEXTCHAR_MEMORY_GB sets it); {way_out}")
