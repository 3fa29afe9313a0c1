"""Audio held between the pipeline's steps: in memory, or spilled to a temporary file so that an
hour of stereo (1.27 GB per copy at 44.1 kHz) never sits in memory. Either way a step reads it
back as `(channels, m)` float32 blocks, so the same code serves a 3 s clip and an hour.

A spill file is written once, in order, and read with plain file reads (no memory map: what the
page cache holds is not the process's memory). A `Store` decides where a run keeps its signals
and removes its spill files when the run ends, however it ends.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .blocks import SOURCE_FRAMES, slices

SPILL_PREFIX = "adaptive-argm-"


class Signal:
    """`(channels, frames)` float32 audio at `sr`, read block by block."""

    channels: int
    frames: int
    sr: int

    def blocks(self, size: int = SOURCE_FRAMES) -> Iterator[np.ndarray]:
        raise NotImplementedError


class InMemory(Signal):
    """An array as a signal: its blocks are views."""

    def __init__(self, array: np.ndarray, sr: int):
        self.array, self.sr = array, sr
        self.channels, self.frames = array.shape

    def blocks(self, size: int = SOURCE_FRAMES) -> Iterator[np.ndarray]:
        return slices(self.array, size)


class Spill(Signal):
    """Frames in a file, interleaved little-endian float32, appended in order."""

    def __init__(self, path: Path, channels: int, sr: int):
        self.path, self.channels, self.sr, self.frames = Path(path), channels, sr, 0
        self._file = open(self.path, "wb")

    # The file's own read and write, not numpy's `tofile`/`fromfile`: those turn a Ctrl-C that
    # lands in them into a TypeError ("expected str, bytes or os.PathLike object, not
    # BufferedWriter"), which a batch then recorded as a failed file instead of an interrupt.
    def append(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block.T, dtype="<f4").data)
        self.frames += block.shape[1]

    def close(self) -> None:
        self._file.close()

    def blocks(self, size: int = SOURCE_FRAMES) -> Iterator[np.ndarray]:
        with open(self.path, "rb") as f:
            for _ in range(0, self.frames, size):
                data = np.frombuffer(f.read(size * self.channels * 4), dtype="<f4")
                yield np.ascontiguousarray(data.reshape(-1, self.channels).T, dtype=np.float32)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class Mapped(Signal):
    """Another signal's blocks through a stage, computed each time it is read (`frames` long)."""

    def __init__(self, source: Signal, stage: Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]],
                 frames: int | None = None, sr: int | None = None):
        self.source, self.stage = source, stage
        self.channels = source.channels
        self.frames = source.frames if frames is None else frames
        self.sr = source.sr if sr is None else sr

    def blocks(self, size: int = SOURCE_FRAMES) -> Iterator[np.ndarray]:
        return self.stage(self.source.blocks(size))


def as_signal(x: np.ndarray | Signal, sr: int) -> Signal:
    return x if isinstance(x, Signal) else InMemory(np.asarray(x, dtype=np.float32), sr)


def gather(blocks: Iterable[np.ndarray], channels: int, expected_frames: int = 0) -> np.ndarray:
    """Join `(channels, m)` blocks into one array, filled in place when `expected_frames` is
    right (no second full-length copy)."""
    out = np.empty((channels, max(0, expected_frames)), np.float32)
    pos, extra = 0, []
    for block in blocks:
        take = min(block.shape[1], out.shape[1] - pos)
        out[:, pos:pos + take] = block[:, :take]
        pos += take
        if take < block.shape[1]:
            extra.append(block[:, take:])
    if extra:
        return np.concatenate([out, *extra], axis=1)
    return out[:, :pos] if pos < out.shape[1] else out


def held(x: Signal) -> np.ndarray:
    """A signal as one array: the array itself when it is in memory, else read back whole."""
    return x.array if isinstance(x, InMemory) else gather(x.blocks(), x.channels, x.frames)


class Store:
    """Where a run keeps its signals: in memory (`folder` None) or as spill files in `folder`."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder
        self._count = 0

    @property
    def on_disk(self) -> bool:
        return self.folder is not None

    def keep(self, blocks: Iterable[np.ndarray], channels: int, sr: int, expected_frames: int = 0) -> Signal:
        """The blocks, held: an `InMemory` array, or a `Spill` file."""
        if self.folder is None:
            return InMemory(gather(blocks, channels, expected_frames), sr)
        self._count += 1
        spill = Spill(self.folder / f"{self._count}.f32", channels, sr)
        try:
            for block in blocks:
                spill.append(block)
        finally:
            spill.close()
        return spill

    def drop(self, signal: Signal | None) -> None:
        """Free a signal no longer needed (its spill file goes at once)."""
        if isinstance(signal, Spill):
            signal.remove()


MEMORY = Store()


@contextmanager
def workspace(on_disk: bool):
    """A `Store` for one run: spill files in a new temporary folder (removed at the end, also on
    an error or an interrupt) when `on_disk`, else memory."""
    if not on_disk:
        yield MEMORY
        return
    folder = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX))
    try:
        yield Store(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
