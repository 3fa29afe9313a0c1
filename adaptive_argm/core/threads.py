"""numpy's and scipy's BLAS on one thread in the command's process, its pool workers and Ray actors.

The command runs its work side by side itself: the stems' chains on a pool of one thread per
core, `compare`'s outputs written side by side. OpenBLAS's threads (one per core, in numpy's copy
and in scipy's) then compete with that: its calls here are energy sums (`np.dot`) and the metric
panel's mel projection, which gain little from a second thread, and its threads keep spinning
on the core the other chain needs after each call. Measured on 30 s of stereo (the four stems of
a random-weight separation through the `adaptive` chains, two threads): 1.04 s and 2.07 CPU s
with OpenBLAS's two threads, 0.74 s and 1.40 CPU s with one; the whole routed run outside
separation 2.62 s against 2.09 s, its output bit-identical. Workers fill the cores by being
several: six 8 s clips on two pool workers took 38.8 s against 39.4 s with OpenBLAS's threads
(41.2 s against 47.8 s in a first pair), the same files. Torch (Demucs) keeps its own threads
(OpenMP), which this leaves alone.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Iterator, TypeVar

R = TypeVar("R")

USER_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Where the user set any of these, the BLAS threads are theirs to choose."""


def one_blas_thread() -> bool:
    """From now on the BLAS libraries loaded in this process (numpy's and scipy's OpenBLAS) use
    one thread. Nothing changes where the user set one of `USER_VARIABLES`. True if applied."""
    return _limited() is not None


@contextlib.contextmanager
def one_blas_thread_while() -> Iterator[None]:
    """`one_blas_thread` for the duration of a block only: a batch run in the caller's own
    process (one worker), whose numbers must be its workers' to the last bit (a sum over
    several BLAS threads is added up in another order)."""
    limiter = _limited()
    try:
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _limited():
    """threadpoolctl's limit of one BLAS thread, applied as it is made; None where the user chose."""
    if any(v in os.environ for v in USER_VARIABLES):
        return None
    from threadpoolctl import threadpool_limits

    import numpy  # noqa: F401  (their BLAS libraries must be loaded to be limited)
    import scipy.linalg  # noqa: F401

    return threadpool_limits(1, user_api="blas")


def side_by_side(fn: Callable, items) -> list:
    """`fn` of each item, in order, side by side on the cores when there are several: for
    independent numpy passes over independent arrays (the router's probes of the mix and of each
    stem; measuring and writing the compared outputs), which let go of the interpreter."""
    items = list(items)
    if len(items) < 2:
        return [fn(it) for it in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


_END = object()


class Beside(Generic[R]):
    """`fn(items)` on a thread of its own, while the caller hands it the items one at a time
    (`put`, which waits while `depth` items are queued): a pass over a signal that runs beside
    another pass over the same blocks (measuring the input while it is decoded and its DC
    removed). `result()` ends the items and returns what `fn` returned, or raises what it
    raised. Use as a context manager: leaving it on an error ends the items early."""

    def __init__(self, fn: Callable[[Iterable], R], depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = False
        self._value: R | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(fn,), name="beside", daemon=True)
        self._thread.start()

    def put(self, item) -> None:
        if self._error is None:
            self._queue.put(item)

    def result(self) -> R:
        self._end()
        if self._error is not None:
            raise self._error
        return self._value

    def _items(self) -> Iterator:
        while (item := self._queue.get()) is not _END:
            if not self._stop:
                yield item

    def _work(self, fn: Callable[[Iterable], R]) -> None:
        items = self._items()
        try:
            self._value = fn(items)
        except BaseException as error:  # noqa: BLE001  (re-raised in the caller's thread)
            self._error = error
        for _ in items:  # the items `fn` left, up to the end: `put` must never wait on them
            pass

    def _end(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()

    def __enter__(self) -> "Beside[R]":
        return self

    def __exit__(self, *exc) -> None:
        self._stop = exc[0] is not None
        self._end()
