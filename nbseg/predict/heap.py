"""The process's memory: what it holds and held at its peak, and keeping freed memory in the process
while a prediction runs (glibc only; elsewhere a no-op).

A 3D U-Net tile allocates activations of 100+ MB per forward pass. glibc hands blocks that large
straight back to the kernel when they are freed, so the next pass faults every page in again and
spends a third of its time in the kernel zeroing pages (PyTorch's tuning guide suggests jemalloc
or tcmalloc for this reason). Raising glibc's mmap and trim thresholds for the duration keeps the
blocks for reuse; afterwards the thresholds go back to glibc's steady-state values and the spare
memory is returned with ``malloc_trim``.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP = 2**30  # blocks up to 1 GiB come from (and go back to) the heap
STEADY = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}  # glibc's dynamic limits on 64-bit
DISABLE_ENV = "NBSEG_NO_HEAP_TUNING"


@functools.lru_cache(maxsize=1)
def _libc():
    if os.name != "posix" or os.environ.get(DISABLE_ENV):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only; musl and macOS lack them
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def retained_heap():
    """Within the block, freed large allocations stay in the process for reuse."""
    libc = _libc()
    if libc is None or not libc.mallopt(M_MMAP_THRESHOLD, KEEP):
        yield
        return
    libc.mallopt(M_TRIM_THRESHOLD, 2 * KEEP - 1)
    try:
        yield
    finally:
        for option, value in STEADY.items():
            libc.mallopt(option, value)
        libc.malloc_trim(0)


def trim() -> None:
    """Hand memory freed inside the process back to the system (glibc ``malloc_trim``; elsewhere a no-op),
    so that a measurement of the process's memory that follows counts what is held, not what was."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def measure_growth(fn) -> int | None:
    """Bytes the process's resident memory rose above its level before ``fn()``, at its peak.

    Linux only (the peak mark VmHWM, reset through ``/proc/self/clear_refs``); None elsewhere.
    """
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_bytes(status, "VmRSS")
        fn()
        return max(0, _status_bytes(status, "VmHWM") - before)
    except (OSError, ValueError):
        return None


def _status_bytes(status: Path, key: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # kB
    raise ValueError(f"{key} not in {status}")


def release(array) -> None:
    """Drop the pages of a read-only memory-mapped ``array`` from the process (they stay in the
    page cache and come back when read again), so reading a result file slab by slab does not
    grow the process by its whole size; a no-op for arrays in memory."""
    import mmap

    mapping = getattr(array, "_mmap", None)
    while mapping is None and getattr(array, "base", None) is not None:
        array = array.base
        mapping = getattr(array, "_mmap", None)
    if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def current_memory() -> int:
    """The process's resident memory in bytes (psutil), or 0 where it cannot be read."""
    try:
        import psutil
    except ImportError:
        return 0
    return int(psutil.Process().memory_info().rss)
