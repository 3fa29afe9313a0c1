"""Ctrl-C without damage: hold SIGINT and SIGTERM off for the few steps that must not be cut in
half (a result set's commit, making a temporary file and naming it), and keep the record of
what a command finished, so that the line printed after an interrupt is true."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM off until the block is done, then deliver them (main thread only:
    elsewhere Python runs no signal handlers anyway). The handlers are swapped as well as the
    mask, because the kernel may hand a process signal to another thread that does not block it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in HELD_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending signal runs the deferring handler now
        for s, handler in old.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)


_journals: list[list[Path]] = []


@contextmanager
def recording() -> Iterator[list[Path]]:
    """Collect what is kept (committed result sets, records) while the block runs."""
    kept: list[Path] = []
    _journals.append(kept)
    try:
        yield kept
    finally:
        _journals.remove(kept)


def note_kept(path: str | Path) -> None:
    """Record a folder or file this run finished and keeps (a set committed in a worker process
    is noted by the parent when it hears of it)."""
    for journal in _journals:
        if Path(path) not in journal:
            journal.append(Path(path))
