"""Hand memory freed after start-up back to the operating system.

Reading a corpus leaves freed blocks in two allocators that keep them for reuse: pyarrow's (mimalloc) and
glibc's heap (whose mmap threshold rises after large numpy temporaries are freed, so later ones land on the
heap). Kept, they are private pages in every rank of a node: ~20-30 MiB measured per rank at 1 M examples
(benchmarks/corpus_startup.py). Releasing them once the data is loaded costs milliseconds.
"""

from __future__ import annotations

import ctypes

import pyarrow as pa


def release_free_memory() -> None:
    """Return both allocators' free blocks to the OS (glibc's ``malloc_trim`` only where glibc is the libc)."""
    pa.default_memory_pool().release_unused()
    try:  # the process's own symbols: no library search (find_library runs ldconfig: 20+ ms a start)
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return
    trim(0)
