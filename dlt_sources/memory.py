"""What a collecting process needs to keep its memory near what it holds.

Two things made a first collection of a million records peak at 400 MB or more (make bench-collection), neither
of them data the collectors keep (the other is in dlt_sources.destination):

- glibc gives threads that allocate at once an arena each (up to eight per core) and reuses what is freed in an
  arena for that arena only; the Twilio collector pages thirty listings on thread pools, each page a body of
  megabytes, and dlt loads on threads of its own. Two arenas, and big blocks always mapped and unmapped rather
  than kept, save about 100 MB at peak (`limit_malloc_arenas`).
- Arrow allocates from a jemalloc pool of its own, which keeps what it frees: Arrow on the system allocator, under
  the same limits, peaks 60 MB lower (`arrow_on_system_allocator`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import pyarrow as pa

M_ARENA_MAX = -8  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MALLOC_ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial threshold, kept instead of raised to the largest block freed


@cache
def limit_malloc_arenas() -> bool:
    """At most MALLOC_ARENAS glibc arenas for the threads created from now on, and blocks above 128 KB always
    mapped; once per process. False where the C library is not glibc (nothing changes there)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)) and bool(
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False



@cache
def arrow_on_system_allocator() -> None:
    """Arrow's buffers from malloc, as the rest of the process's; once per process."""
    pa.set_memory_pool(pa.system_memory_pool())
