"""`compare`'s figures drawn in a process of their own, beside the work that follows restoration.

Matplotlib's work is Python that holds the interpreter: importing it (0.35-0.4 s) and building and
drawing the two figures (about 0.85 s on 30 s of stereo). In the command's own process it
competes with measuring and writing the results, on a thread or not. A child process started
with `compare` imports matplotlib while the clip is separated, then draws each figure it is
handed (plain data: `plots.SpectrogramsFigure`, `plots.StemsFigure`) while this process
works on: the stems figure from a pool thread as soon as its images are taken, the spectrograms
once the results are measured. It imports only what drawing needs (numpy, matplotlib, `plots`),
about 0.6 CPU s, where the package and the pipeline would cost 1.6.

The child is a fresh interpreter (`python -c`), not a `multiprocessing` worker: a spawned worker
starts by importing the caller's main module, which a user's script without a `__main__` guard
does not survive. It ignores Ctrl-C (the command handles it, and closes the child) and ends when
its input closes. When it cannot start or dies, the figures are drawn in this process instead:
nothing is lost but time. A figure the child could not draw raises `DrawingError` here.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from .threads import USER_VARIABLES

CHILD = "from adaptive_argm.core.drawing import child; child()"


class DrawingError(RuntimeError):
    """A figure the drawing process could not draw (its error, in one line)."""


class Figure(Protocol):
    def draw(self, out_path: str | Path) -> Path: ...


class Drawing:
    """Figures drawn in a child process (`in_process=True`, or no child: here, when handed).
    Use as a context manager: leaving it on an error stops the child."""

    def __init__(self, in_process: bool = False):
        self._child = None if in_process else _start()
        # Handing a figure over blocks until the child reads it (it may still be importing
        # matplotlib): a thread of its own does the writing.
        self._sender = ThreadPoolExecutor(max_workers=1) if self._child else None
        self._sent: list[tuple[Future, Figure, Path]] = []
        self._handing = threading.Lock()  # `draw` may be called from a worker thread

    @property
    def in_child(self) -> bool:
        return self._child is not None

    def draw(self, figure: Figure, out_path: str | Path) -> None:
        """Draw `figure` into `out_path`: in the child (finished by `finish`), or now."""
        if self._child is None:
            figure.draw(out_path)
            return
        message = pickle.dumps((figure, str(out_path)), protocol=pickle.HIGHEST_PROTOCOL)
        with self._handing:  # the answers come back in the order the figures were handed over
            self._sent.append((self._sender.submit(self._send, message), figure, Path(out_path)))

    def _send(self, message: bytes) -> None:
        self._child.stdin.write(message)
        self._child.stdin.flush()

    def finish(self) -> None:
        """Wait until every figure handed over is drawn. A figure whose child died before
        saying so is drawn here; one the child failed to draw raises `DrawingError`."""
        if self._child is None:
            return
        sent, self._sent = self._sent, []
        lost = False
        for future, figure, path in sent:
            if not lost:
                try:
                    future.result()
                    ok, error = pickle.load(self._child.stdout)
                except (OSError, EOFError, pickle.UnpicklingError):
                    lost = True
                else:
                    if not ok:
                        self.close(stop=True)
                        raise DrawingError(f"{path.name}: {error}")
                    continue
            figure.draw(path)
        self.close()

    def close(self, stop: bool = False) -> None:
        """End the child: it ends by itself once its input closes, after the figures it holds;
        `stop` (an error, figures no longer wanted) kills it first, which also frees a sender
        blocked on its input."""
        child, self._child = self._child, None
        if child is not None and (stop or self._sent):
            child.kill()
        self._sent = []
        if self._sender is not None:
            self._sender.shutdown(wait=True, cancel_futures=True)
            self._sender = None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def __enter__(self) -> "Drawing":
        return self

    def __exit__(self, *exc) -> None:
        self.close(stop=exc[0] is not None)


def _start() -> subprocess.Popen | None:
    """The child, started; None where it cannot start."""
    if not sys.executable:
        return None
    env = dict(os.environ)
    # The same package as this process, found the same way (an install, a source tree on the path).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if not any(v in os.environ for v in USER_VARIABLES):
        env["OPENBLAS_NUM_THREADS"] = "1"  # the child draws; it needs no BLAS threads
    try:
        return subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env)
    except OSError:
        return None


def child() -> None:
    """The drawing process: imports matplotlib, then draws each `(figure, path)` read from its
    input and answers `(True, "")` or `(False, error)` on its output, until its input closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import plots

    plots.warm_up()  # matplotlib's import and a first figure, while the parent separates
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            figure, path = pickle.load(source)
        except EOFError:
            # Every answer is flushed: nothing is left to do, and tearing down matplotlib's
            # modules would keep the parent waiting (0.3 s).
            os._exit(0)
        try:
            figure.draw(path)
            answer = (True, "")
        except Exception as exc:  # noqa: BLE001  (said to the parent, which raises it)
            answer = (False, f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers)
        answers.flush()
