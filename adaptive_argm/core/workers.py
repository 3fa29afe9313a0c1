"""Worker processes: run one function over many tasks in fresh interpreters, hand each result
back as it finishes, and stop the workers cleanly when the caller is interrupted.

Batch runs, the eval suite and the paired benchmark all go through `run_tasks`. Workers are
spawned, not forked: torch and the thread pools of the parent do not survive a fork safely. A
worker ignores Ctrl-C (the parent decides what it means) and turns SIGTERM into `SystemExit`
inside whatever it is doing, so atomic writes remove their temporary files on the way out.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Callable, Sequence

from . import heap, threads

STOP_GRACE_S = 30.0
"""How long a stopped worker may take to clean up before it is killed."""


def worker_count(jobs: int, tasks: int) -> int:
    """`jobs` workers (0: one per CPU core), never more than there are tasks, at least one."""
    return max(1, min(tasks, jobs or os.cpu_count() or 1))


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence, jobs: int, on_done: Callable[[int, Future], None], *,
              initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> None:
    """Run `fn(task)` for every task and call `on_done(task index, finished future)` as each one
    finishes. With one worker (`worker_count`) the tasks run here, in order, and an exception in
    `fn` propagates at once (`initializer` is not called). Otherwise they run in spawned worker
    processes, each set up once by `initializer(*initargs)`; a worker that dies (out of memory,
    killed) fails the futures it leaves with `BrokenProcessPool`. When anything interrupts the
    loop (Ctrl-C, an error in `on_done`), the queued tasks are cancelled, the workers stopped,
    and the exception raised again."""
    workers = worker_count(jobs, len(tasks))
    if workers == 1:
        with heap.freed_memory_kept(), threads.one_blas_thread_while():
            for i, task in enumerate(tasks):
                done: Future = Future()
                done.set_result(fn(task))
                on_done(i, done)
        return
    started_before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(initializer, initargs))
    try:
        futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        for f in as_completed(futures):
            on_done(futures[f], f)
    except BaseException:
        _stop(pool, started_before)
        raise
    pool.shutdown()


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    try:
        heap.keep_freed_memory()
        threads.one_blas_thread()  # the workers themselves fill the cores
        if initializer is not None:
            initializer(*initargs)
    except SystemExit as stop:
        # Stopped while setting up (Ctrl-C, or a sibling worker's failure, while this one still
        # imports scipy or torch): the pool would log the exit as an initializer's failure,
        # traceback and all. Nothing of the worker's is open yet, so it ends at once, quietly.
        os._exit(stop.code if isinstance(stop.code, int) else 1)


_stopping = False


def _stop_worker(signum, frame):
    global _stopping
    _stopping = True
    raise SystemExit(128 + signum)


def stop_if_stopping(exc: BaseException) -> None:
    """Raise `SystemExit` in place of `exc` when this worker has been told to stop. The
    `SystemExit` its handler raises can come out as another exception (numba turns one raised
    inside compiled code into a `SystemError`): a handler that records a task's failure calls
    this first, and stops instead."""
    if _stopping:
        raise SystemExit(143) from exc


def _stop(pool: ProcessPoolExecutor, started_before: set) -> None:
    """Cancel what has not started, send SIGTERM to the pool's workers (the processes started
    since it was made) and wait for them to clean up."""
    pool.shutdown(wait=False, cancel_futures=True)
    workers = [p for p in multiprocessing.active_children() if p not in started_before]
    for p in workers:
        p.terminate()
    for p in workers:
        p.join(STOP_GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()


def map_ordered(fn: Callable[[Any], Any], tasks: Sequence, jobs: int,
                on_progress: Callable[[int, int], None] | None = None, *, run: Callable[..., None] | None = None) -> list:
    """`fn(task)` for every task as `run_tasks` (or `run`, a backend's own) runs it, the results
    in task order; an exception in a task is raised here. `on_progress(done, total)` after each task."""
    results: list = [None] * len(tasks)
    finished = 0

    def done(i: int, future: Future) -> None:
        nonlocal finished
        results[i] = future.result()
        finished += 1
        if on_progress:
            on_progress(finished, len(tasks))

    (run or run_tasks)(fn, tasks, jobs, done)
    return results
