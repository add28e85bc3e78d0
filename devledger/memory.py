"""Giving the C heap's free memory back to the operating system, for long-running processes: the
connector's ledger and closer processes, and the dev ledger's.

glibc's malloc keeps memory freed by a thread in that thread's arena, and gives an arena's memory back only
from its top. The ledger process frees megabytes a round (transactions' JSON, answers, SQLite's pages)
from several threads, so its arenas filled with free chunks the kernel still counted as resident: in the
100,000-meter soak its malloc arenas held 120 MB, 74 MB of it free, and kept growing
(docs/benchmarks/soak.md). The dev ledger's 20 threads did the same at every window's burst of
TRANSFERs: its heap in use stayed at 16 MB while the free memory in its arenas rose by 3-4 MB a window.
`malloc_trim(0)` hands every whole free page of every arena back, and `limit_arenas` keeps the threads to
a few arenas, so memory one thread freed is reused by the others.

Here rather than in `connector`: the dev ledger runs without the connector's code, and the connector
already takes its process helpers from here (`devledger.lifecycle`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

ARENAS = 2  # malloc arenas of a long-running process: the connector's ledger and closer, the dev ledger
RELEASE_EVERY = 5.0  # seconds between two `release_free_memory` of such a process (a few ms each)
M_ARENA_MAX = -8  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
# Allocations of this size or more get a mapping of their own, unmapped when freed: glibc's starting value,
# which it otherwise raises to the size of every mapped block freed (up to 32 MiB), after which such blocks
# come from the arenas. A round's buffers (SQLite's sorter, up to its 64 MiB cache_size; 500 transactions'
# JSON; result lists) then left holes among the long-lived objects that malloc_trim cannot give back.
LARGE_ALLOCATION = 128 * 1024


@cache  # looked up on first use, not at import
def _glibc(name: str) -> Callable[..., int] | None:
    """A glibc function, or None where the C library has none (musl, macOS)."""
    lib = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(lib), name) if lib else None  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def limit_arenas(count: int) -> bool:
    """At most `count` malloc arenas from now on (glibc's default: 8 per core); call before threads start.
    True if glibc took it."""
    mallopt = _glibc("mallopt")
    return bool(mallopt(M_ARENA_MAX, count)) if mallopt is not None else False


def map_large_allocations(threshold: int = LARGE_ALLOCATION) -> bool:
    """Every allocation of `threshold` bytes or more mapped on its own and unmapped when freed, from now
    on (glibc stops moving the threshold). True if glibc took it."""
    mallopt = _glibc("mallopt")
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) if mallopt is not None else False


def release_free_memory() -> bool:
    """Give the free pages of every malloc arena back to the OS; True if glibc released any."""
    trim = _glibc("malloc_trim")
    return bool(trim(ctypes.c_size_t(0))) if trim is not None else False
