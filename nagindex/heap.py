"""How the process's C heap serves the scan's large buffers (docs/design.md §4.1)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


#: glibc's ``mallopt`` parameter for the size above which a block is mapped on its own.
_M_MMAP_THRESHOLD = -3


@functools.cache
def map_large_buffers() -> None:
    """Have glibc map every block of 1 MB or more on its own, for the rest of the process.

    glibc raises its mmap threshold each time a mapped block is freed, up to 32 MB,
    after which a scan's chunk buffers come from the heap; there the small
    allocations made between them pin the pages they leave free, and a query's
    peak grew by about 7 MB a shard (tools.bench_pool_memory, docs/figures.md).
    A fixed threshold keeps the peak flat at the same scan speed
    (tools.bench_workers, same run). Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass
