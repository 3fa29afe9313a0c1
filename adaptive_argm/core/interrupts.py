"""Ctrl-C without damage: hold SIGINT and SIGTERM off for the few steps that must not be cut in
half (a result set's commit, making a temporary file and naming it), write files through a
temporary file renamed into place (`atomic_path`), and keep the record of what a command
finished, so that the line printed after an interrupt is true."""

from __future__ import annotations

import os
import signal
import tempfile
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill` and `timeout` send), raised where Ctrl-C raises KeyboardInterrupt:
    a terminated command cleans up as an interrupted one does."""


def _terminate(signum, frame):
    raise Terminated()


def terminate_as_interrupt() -> None:
    """From now on SIGTERM raises `Terminated` in the main thread (a command-line program's
    start; spawned workers set their own handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None):
    """Yield a temporary path beside `path`; on success it is renamed onto `path` with the
    permissions a plain `open` would give (mkstemp's are owner-only), on any failure removed.
    An interrupted write therefore never leaves a partial or half-replaced file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with signals_held():  # Ctrl-C cannot fall between making the file and knowing its name
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix,
                                       dir=path.parent)
            os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def umask() -> int:
    """The process's file-mode mask (read without changing it): what a file or folder made by
    a rename gets instead of a plain `open`'s or `mkdir`'s permissions."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
