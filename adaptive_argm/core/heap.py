"""Keep the memory a worker process frees for its next clip, instead of handing it back to the
kernel.

glibc's malloc returns every large block (above its mmap threshold, 128 KiB rising to 32 MiB)
to the kernel when it is freed, and trims the top of its heap; the next segment's tensors, the
next clip's spectrograms, the same sizes again, are then faulted in and zeroed page by page.
Measured on 8 s stereo clips through a full-size HTDemucs on one CPU thread: 1.1 million page
faults per clip and about 4 s of kernel time on 11 s of user time; in a Ray actor, whose two
dozen threads contend for its page-table lock, more (README, "On a Ray cluster"; the runs are
eval/results/ray.md). Kept, a worker faults in its peak once.

The price is memory: the heap keeps its peak and fragments more (a 5-minute stereo stem-wise
run peaked at 2163 MB instead of 2042 MB and separated in 127.5 s instead of 155.2 s; a 30 s
routed run, memory kept while it separated, peaked at 1648 MB against 1315 MB). So only
batch work keeps it: pool workers and Ray actors for good (`keep_freed_memory`), and a batch run
in the command's own process while it runs (`freed_memory_kept`). A single `run` or `compare`
keeps glibc's behaviour, and with it its measured peaks (a 10-minute separated file sits close
to its 3 GB target). Linux with glibc only (`mallopt`); elsewhere nothing changes.

Threads are the other way freed memory stays in the process: each thread that runs a chain gets
its own malloc arena, and the scratch it frees there (spectrogram blocks, under the mmap
threshold) stays in the RSS after the chain ends. With a stems folder, a 10-minute stereo file
through `compare` still held 2.64 GB when its restore stage ended (3.39 GB at the peak); with one
arena (`MALLOC_ARENA_MAX=1`) 1.45 GB (peak 3.06 GB). `give_back_freed` (`malloc_trim`) hands it
back after each long stem's chain instead, without one arena's lock between the threads: 2.11 GB
at the stage's end (peak 3.14 GB); the separated run's peak fell from 4.04 to 3.47 GB.

The command's own process also serves numpy's large arrays without transparent huge pages
(`no_huge_pages`). numpy asks the kernel for huge
pages on every array of 4 MiB and more (madvise), and where the kernel then defragments memory on
the first touch of such an array (THP "defrag" set to "madvise", a common default) that touch
can stall: the metric panel's first pass over 30 s of stereo (an 82 MB level histogram) took
1.4-2.0 s, 1.0-1.5 s of it in the kernel, instead of 0.36 s; the non-separation stages of three
30 s runs varied by up to 1.7 s between identical runs (eval/results/bench_separated.md).
Pool workers and Ray actors, which keep their memory, keep numpy's default: with huge pages off
in them too, 12 clips of 8 s took Ray 114.4 s with one worker and 74.7 s with two (1.53x), against
116.0 s and 66.2 s (1.75x) at the default, one run each (`eval/bench.py --ray`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import threading
from typing import Iterator

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_MMAP_MAX = 65536
"""glibc's default for M_MMAP_MAX."""
_GLIBC_TRIM_THRESHOLD = 128 * 1024
"""glibc's default for M_TRIM_THRESHOLD (bytes)."""
_TRIM_ABOVE = 2**31 - 1
"""The trim threshold (bytes) while memory is kept: mallopt takes an int, so 2 GiB of free memory
at the heap's top, the most that can be asked, before any of it goes back."""


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_lock = threading.Lock()
_state = {"for_good": False, "depth": 0, "applied": False}


def keep_freed_memory() -> bool:
    """From now on this process serves every allocation from its heap (no block of its own
    mapped from the kernel) and never trims the heap. True if applied (glibc), False if not.

    For worker processes, which live for one batch: the heap keeps its peak until they exit."""
    with _lock:
        _state["for_good"] = True
        _state["applied"] = _state["applied"] or _apply()
        return _state["applied"]


def _apply() -> bool:
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_ABOVE))


def _give_back() -> None:
    """glibc's defaults again, and the free memory at the heap's top returned to the kernel."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def trim() -> None:
    """Hand the memory this process has freed back to the kernel now, in every malloc arena
    (`malloc_trim`), whatever it keeps otherwise. A no-op without glibc."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def give_back_freed() -> None:
    """`trim`, unless the process keeps its memory on purpose (a pool worker, a batch block).
    Threads that ran a chain leave their arenas holding its freed scratch otherwise."""
    with _lock:
        keeping = _state["applied"]
    if not keeping:
        trim()


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Freed memory kept for the duration of a block run in a long-lived process (a command, a
    notebook: a batch run with one worker), then glibc's defaults again and the heap's free top
    given back when the last of the blocks running (nested, or in other threads) ends. In a
    process that keeps its memory for good nothing changes. Yields whether memory is kept."""
    with _lock:
        if _state["depth"] == 0 and not _state["for_good"]:
            _state["applied"] = _apply()
        _state["depth"] += 1
        kept = _state["applied"]
    try:
        yield kept
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["applied"] and not _state["for_good"]:
                _give_back()
                _state["applied"] = False


def no_huge_pages() -> bool:
    """From now on numpy's new arrays get ordinary pages (module doc). Nothing changes where
    the user set `NUMPY_MADVISE_HUGEPAGE` (numpy's own switch, read at its import) or numpy
    offers no switch. True if switched off here."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)  # numpy 2, numpy 1
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:
        return False
    setter(False)
    return True
