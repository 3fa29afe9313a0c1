"""The block runner: every step of a chain processes audio as a stream of `(channels, m)` float32
blocks, so a 3 s clip (one block) and an hour streamed from disk go through the same code.

A step that must see around each sample (a zero-phase filter, an STFT denoiser, a look-ahead
limiter) declares its `Blocking`: how many frames it owns per block, how much context it reads on
each side (processed, then discarded), whether neighbouring blocks' outputs are crossfaded, and
what lies beyond the signal's ends. `blockwise` runs such a step on a stream; it holds about one
block and its context, whatever the length. A step that carries state from sample to sample
(pedalboard's plugins) runs with `sequential`. A stage is a function from a block stream to a
block stream; stages compose into a chain (`chained`), and `apply` runs one on an array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal

import numpy as np

Stage = Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]
"""A step on a stream: `(channels, m)` float32 blocks in, the same total length out."""

SOURCE_FRAMES = 1 << 16
"""Frames per block when an array or a file is fed to a stage (1.5 s at 44.1 kHz)."""


@dataclass(frozen=True)
class Blocking:
    """How a step that needs context is run block by block, in frames."""

    block: int
    """Frames each block owns."""
    context: int
    """Frames read on each side of a block, processed and discarded."""
    fade: int = 0
    """Half-width of the linear crossfade between neighbouring blocks' outputs around each
    boundary (0: each block's own frames are taken as they are). At most `context`."""
    beyond: Literal["crop", "zeros"] = "crop"
    """What a block's context holds past the signal's ends: nothing (the segment is cut there),
    or zeros."""
    whole_up_to: int = 0
    """A signal at most this long is processed as one block without context."""

    def __post_init__(self):
        if self.block < 1 or self.context < 0 or not 0 <= self.fade <= self.context:
            raise ValueError("need block >= 1, context >= 0 and 0 <= fade <= context")


def fade_ramp(fade: int) -> np.ndarray:
    """The rising half of a crossfade over `2 * fade` frames, sample-centred, float32."""
    return (np.arange(2 * fade, dtype=np.float32) + 0.5) / np.float32(2 * fade)


class _Buffer:
    """The input frames [lo, hi) a stage still needs, pulled from upstream on demand."""

    def __init__(self, blocks: Iterator[np.ndarray], channels: int):
        self.blocks, self.lo, self.hi = blocks, 0, 0
        self.parts: list[np.ndarray] = []
        self.channels = channels

    def segment(self, lo: int, hi: int) -> np.ndarray:
        """Frames [lo, hi) (both inside the signal), pulling more blocks as needed."""
        while self.hi < hi:
            block = next(self.blocks, None)
            if block is None:
                raise ValueError(f"the stream ended at frame {self.hi}, before frame {hi}")
            self.parts.append(np.array(block, dtype=np.float32))  # a copy: the source may be overwritten
            self.hi += block.shape[1]
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts, axis=1)]
        data = self.parts[0] if self.parts else np.zeros((self.channels, 0), np.float32)
        return data[:, lo - self.lo: hi - self.lo]

    def finish(self) -> None:
        """Run the source to its end once the last frame is read: a stage upstream that reports
        what it did when its stream ends (`steps.reported`) would otherwise never get there."""
        for _ in self.blocks:
            pass

    def drop_before(self, frame: int) -> None:
        if self.parts and frame > self.lo:
            self.parts = [self.parts[0][:, frame - self.lo:]]
            self.lo = frame


def blockwise(blocks: Iterable[np.ndarray], frames: int, channels: int, blocking: Blocking,
              fn: Callable[[np.ndarray, int], np.ndarray]) -> Iterator[np.ndarray]:
    """Run `fn(segment, first_frame) -> processed segment` over a stream of `frames` frames in
    `blocking`'s blocks (`first_frame` is where the segment starts, negative when it reaches
    into the zeros before the signal). Each block's own frames are kept (crossfaded with its
    neighbours' over `fade` frames around each boundary); the output is exactly what one pass
    over the whole signal in those blocks gives, handed on in `SOURCE_FRAMES` slices: a stage
    after it then works on blocks of the usual size, not on a segment of a minute (a 5-minute
    direct run's restore stage held 130 MB more when spectral recovery handed on 60 s at once)."""
    b_ = blocking
    source = _Buffer(iter(blocks), channels)
    if frames <= b_.whole_up_to or frames == 0:
        whole = source.segment(0, frames)
        source.finish()
        yield from slices(fn(whole, 0))
        return
    ramp = fade_ramp(b_.fade) if b_.fade else None
    pending = np.zeros((channels, 0), np.float32)  # summed output over [emitted, ...)
    emitted = 0
    for a in range(0, frames, b_.block):
        b = min(a + b_.block, frames)
        lo, hi = a - b_.context, b + b_.context
        clo, chi = max(lo, 0), min(hi, frames)
        if b_.beyond == "zeros":
            seg = np.zeros((channels, hi - lo), np.float32)
            seg[:, clo - lo: chi - lo] = source.segment(clo, chi)
        else:
            lo, hi = clo, chi
            seg = source.segment(lo, hi)
        if chi == frames:
            source.finish()
        y = fn(seg, lo)
        own_lo = a - b_.fade if a > 0 else max(lo, 0)
        own_hi = b + b_.fade if b < frames else min(hi, frames)
        w = None
        if ramp is not None:
            w = np.ones(own_hi - own_lo, np.float32)
            if a > 0:
                w[: 2 * b_.fade] = ramp
            if b < frames:
                w[w.size - 2 * b_.fade:] = ramp[::-1]
        part = y[:, own_lo - lo: own_hi - lo]
        if own_hi - emitted > pending.shape[1]:
            pending = np.concatenate([pending, np.zeros((channels, own_hi - emitted - pending.shape[1]),
                                                        np.float32)], axis=1)
        target = pending[:, own_lo - emitted: own_hi - emitted]
        target += part if w is None else w * part
        ready = (b - b_.fade if b < frames else frames) - emitted
        if ready > 0:
            yield from slices(pending[:, :ready])
            pending = pending[:, ready:].copy()
            emitted += ready
        source.drop_before(max(b - b_.context, 0))
    if pending.shape[1]:
        yield from slices(pending)


def sequential(blocks: Iterable[np.ndarray], fn: Callable[[np.ndarray, bool], np.ndarray]) -> Iterator[np.ndarray]:
    """Run a stateful `fn(block, first) -> block` over a stream, block after block (`first` is
    True for the first block: reset the state there)."""
    first = True
    for block in blocks:
        yield fn(block, first)
        first = False


def chained(stages: Iterable[Stage]) -> Stage:
    """Stages in order as one stage."""
    stages = list(stages)

    def run(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for stage in stages:
            blocks = stage(blocks)
        return blocks

    return run


def cut_to(blocks: Iterable[np.ndarray], frames: int) -> Iterator[np.ndarray]:
    """`blocks` up to `frames` frames in all, the rest dropped."""
    pos = 0
    for block in blocks:
        take = min(block.shape[1], frames - pos)
        if take > 0:
            yield block[:, :take]
        pos += block.shape[1]


def slices(x: np.ndarray, size: int = SOURCE_FRAMES) -> Iterator[np.ndarray]:
    """`(channels, n)` array as consecutive views of `size` frames (one empty block for n = 0)."""
    if x.shape[1] == 0:
        yield x
    for i in range(0, x.shape[1], size):
        yield x[:, i:i + size]


def apply(stage: Stage, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Run `stage` over `(channels, n)` float32 `x`, writing into `out` (a new array by default;
    it may be `x` itself: every stage copies what it keeps, and reads ahead of what it writes)."""
    out = np.empty(x.shape, np.float32) if out is None else out
    pos = 0
    for block in stage(slices(x)):
        out[:, pos:pos + block.shape[1]] = block
        pos += block.shape[1]
    if pos != x.shape[1]:
        raise ValueError(f"a stage returned {pos} frames for {x.shape[1]}")
    return out
