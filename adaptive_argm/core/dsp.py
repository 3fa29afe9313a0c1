"""DSP: run a chain of steps on `(channels, samples)` float32 audio, match loudness, and keep
the result inside full scale without clipping silently.

The steps themselves (`steps.KINDS`, pedalboard plugins) live in `steps`; here they run in order,
block by block (`blocks`). Consecutive pedalboard steps run as one `Pedalboard`, so their state
flows as in a DAW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import CLIP_MODE, CLIP_MODES, ClipMode, check_choice
from . import steps as step_kinds
from .blocks import Blocking, Stage, apply, blockwise, chained
from .levels import loudness_lufs, peak_dbfs, scaled
from .steps import Step

LIMIT_CEILING_DBFS = -1.0
"""Where `limit` and `normalize` put the peak when a result would exceed full scale."""
LIMITER_WINDOW_MS = 2.0
"""Look-ahead and smoothing of the peak limiter: short enough to leave the music around an over alone."""
LIMITER_BLOCK = 1 << 20
"""Frames per block when the limiter runs on a stream (24 s at 44.1 kHz)."""


def chain_stage(steps: tuple[Step, ...], sr: int, frames: int, channels: int, *,
                reports: list | None = None) -> Stage:
    """`steps` in order as one block stage over a stream of `frames` frames; consecutive
    pedalboard steps run as one `Pedalboard`. Reporting steps append to `reports` as the
    stream is read."""
    stages, i = [], 0
    while i < len(steps):
        j = i + 1
        if steps[i].is_plugin:
            while j < len(steps) and steps[j].is_plugin:
                j += 1
            stages.append(step_kinds.plugins_stage(steps[i:j], sr))
        else:
            stages.append(step_kinds.stage(steps[i], sr, frames, channels, reports=reports))
        i = j
    return chained(stages)


def apply_chain(x: np.ndarray, sr: int, steps: tuple[Step, ...], *, overwrite: bool = False,
                reports: list | None = None) -> np.ndarray:
    """Run `steps` in order on `(channels, samples)` audio; same shape out, float32, through the
    block runner (`chain_stage`), as a stream from disk would be.

    `overwrite` writes the result over `x` (a float32 array the caller no longer needs): on a
    10-minute stereo stem that saves 0.2 GB. `reports` collects what reporting steps (spectral
    recovery) found, in chain order."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not steps:
        return x if overwrite else x.copy()
    return apply(chain_stage(steps, sr, x.shape[1], x.shape[0], reports=reports), x, out=x if overwrite else None)


def match_loudness(y: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale `y` to `target_lufs`; returns the audio and the gain applied in dB (0 when either
    loudness is undefined)."""
    current = loudness_lufs(y, sr)  # -inf (silence) and NaN (too short) leave y alone
    if not (np.isfinite(current) and np.isfinite(target_lufs)):
        return y, 0.0
    gain_db = target_lufs - current
    return scaled(y, gain_db), float(gain_db)


@dataclass(frozen=True)
class ClipSafety:
    """What was done to keep the output inside full scale."""

    mode: ClipMode
    action: str
    """`none` (nothing needed), `limited`, `normalized`, or `left-above-full-scale`."""
    peak_before_dbfs: float
    peak_after_dbfs: float


def peak_limit(y: np.ndarray, sr: int, ceiling_dbfs: float = LIMIT_CEILING_DBFS,
               window_ms: float = LIMITER_WINDOW_MS) -> np.ndarray:
    """A look-ahead peak limiter that touches only the overs: the gain each sample needs to stay
    under the ceiling, spread by a minimum filter of two windows and smoothed by a moving average
    of one (so the smoothed gain is never above what any sample needs, and changes over a few
    milliseconds instead of clicking). Unlike pedalboard's `Limiter`, whose JUCE design runs a
    4:1 compressor from -10 dBFS first, it leaves everything below the ceiling untouched."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_dbfs / 20)
    envelope = np.abs(y[0])
    for ch in y[1:]:  # channel by channel: no full-size |y| temporary
        np.maximum(envelope, np.abs(ch), out=envelope)
    need = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    half = max(1, int(round(window_ms * 1e-3 * sr)))
    gain = uniform_filter1d(minimum_filter1d(need, 2 * half + 1, mode="nearest"), half, mode="nearest")
    return np.multiply(y, np.minimum(gain, need), dtype=np.float32)


def limiter_stage(sr: int, frames: int, channels: int, ceiling_dbfs: float = LIMIT_CEILING_DBFS) -> Stage:
    """`peak_limit` as a block stage: each block with enough context on both sides for the
    minimum and smoothing filters (two windows and one), so the blocks join exactly."""
    half = max(1, int(round(LIMITER_WINDOW_MS * 1e-3 * sr)))
    blocking = Blocking(block=LIMITER_BLOCK, context=3 * half + 2, whole_up_to=LIMITER_BLOCK + 3 * half + 2)
    return lambda blocks: blockwise(blocks, frames, channels, blocking,
                                    lambda seg, first: peak_limit(seg, sr, ceiling_dbfs))


def gain_stage(gains_db: list[float]) -> Stage:
    """Each block times each gain in turn (`levels.scaled`, so a gain applied in two steps gives
    the samples two steps give)."""
    def run(blocks):
        for block in blocks:
            for g in gains_db:
                block = scaled(block, g)
            yield block
    return run


def clip_safety(y: np.ndarray, sr: int, mode: ClipMode = "limit") -> tuple[np.ndarray, ClipSafety]:
    """Keep `y` within full scale. `limit`: the look-ahead peak limiter above, to -1 dBFS;
    `normalize`: one gain to -1 dBFS; `none`: leave it (float files hold it) and say so."""
    check_choice(mode, CLIP_MODES, CLIP_MODE)
    before = peak_dbfs(y)
    if before <= 0.0:
        return y, ClipSafety(mode, "none", before, before)
    if mode == "none":
        return y, ClipSafety(mode, "left-above-full-scale", before, before)
    if mode == "limit":
        y = peak_limit(y, sr)
        action = "limited"
    else:
        y = scaled(y, LIMIT_CEILING_DBFS - before)
        action = "normalized"
    return y, ClipSafety(mode, action, before, peak_dbfs(y))
