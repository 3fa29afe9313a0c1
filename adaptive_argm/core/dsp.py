"""DSP: run a chain of steps on `(channels, samples)` float32 audio, match loudness, and keep
the result inside full scale without clipping silently.

The steps themselves (`steps.KINDS`, pedalboard plugins) live in `steps`; here they run in order.
Consecutive pedalboard steps run as one `Pedalboard`, so their state flows as in a DAW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pedalboard

from ..config import CLIP_MODE, CLIP_MODES, ClipMode, check_choice
from . import steps as step_kinds
from .levels import loudness_lufs, peak_dbfs, scaled
from .steps import Step

LIMIT_CEILING_DBFS = -1.0
"""Where `limit` and `normalize` put the peak when a result would exceed full scale."""
LIMITER_WINDOW_MS = 2.0
"""Look-ahead and smoothing of the peak limiter: short enough to leave the music around an over alone."""


def apply_chain(x: np.ndarray, sr: int, steps: tuple[Step, ...], *, overwrite: bool = False) -> np.ndarray:
    """Run `steps` in order on `(channels, samples)` audio; same shape out, float32.

    `overwrite` lets steps work in place in `x` (a float32 array the caller no longer needs:
    it is left holding an intermediate result). Arrays made inside the chain are always
    reused that way; on a 10-minute stereo stem each saves 0.2 GB."""
    y = np.ascontiguousarray(x, dtype=np.float32)
    i = 0
    while i < len(steps):
        if steps[i].is_plugin:
            j = i
            while j < len(steps) and steps[j].is_plugin:
                j += 1
            board = pedalboard.Pedalboard([step_kinds.plugin(s) for s in steps[i:j]])
            y = board(y, sr, reset=True)
            i = j
        else:
            owned = overwrite or not np.may_share_memory(y, x)  # never write into the caller's x
            in_place = owned and steps[i].kind in step_kinds.IN_PLACE_KINDS and y.flags.writeable
            y = step_kinds.run(steps[i], y, sr, out=y if in_place else None)
            i += 1
    return np.ascontiguousarray(y, dtype=np.float32)


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
