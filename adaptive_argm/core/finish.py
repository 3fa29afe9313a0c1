"""After the chain: bring a result back to the input's loudness (BS.1770) when the preset asks,
and keep it inside full scale, in block passes over a signal held in memory or on disk.

Each pass reads the chain's result once, applies the make-up gains and the clip safety on the
fly (`dsp.gain_stage`, `dsp.limiter_stage`) and keeps the outcome while measuring its loudness
and peak, so an hour needs a few blocks of memory. On an array the passes give the samples the
whole-array operations give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from ..config import CLIP_MODE, CLIP_MODES, ClipMode, Mode, check_choice
from . import dsp
from .levels import LoudnessMeter
from .presets import Preset
from .signal import MEMORY, InMemory, Mapped, Signal, Store, as_signal

LOUDNESS_TOLERANCE_LU = 0.2
"""How close a loudness-matched result must land after clip safety."""
LOUDNESS_LIMIT_PASSES = 8
"""Make-up-gain-and-limit passes at most (each costs one limiter pass and one loudness measure)."""


@dataclass(frozen=True)
class Restored:
    """One restored mix and what was done to it after the chain."""

    audio: np.ndarray | Signal | None
    """`(channels, samples)` float32 at the run's rate: an array, or (a streamed run) a signal on
    disk that lives as long as the run; None once that run has written it."""
    mode: str
    loudness_gain_db: float
    clip: dsp.ClipSafety
    recovery: dict = field(default_factory=dict)
    """What spectral recovery found and did, by chain ("mix" for direct, else each stem):
    `recovery.RecoveryReport`s."""


class _Measured:
    """Loudness and peak of blocks passing through."""

    def __init__(self, sr: int, channels: int):
        self.meter, self.peak = LoudnessMeter(sr, channels), 0.0

    def through(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.meter.push(block)
            if block.size:
                self.peak = max(self.peak, float(np.max(block)), -float(np.min(block)))
            yield block

    @property
    def peak_dbfs(self) -> float:
        return 20.0 * math.log10(self.peak) if self.peak > 0 else -math.inf


def measured(x: Signal) -> _Measured:
    """Loudness and peak of a signal: taken when it was kept (`keep_measured`), else in one pass."""
    m = getattr(x, "measured", None)
    if m is None:
        m = _Measured(x.sr, x.channels)
        for _ in m.through(x.blocks()):
            pass
    return m


def keep_measured(store: Store, blocks: Iterable[np.ndarray], channels: int, sr: int, frames: int = 0) -> Signal:
    """`store.keep`, measuring loudness and peak on the way (no later pass needed for them)."""
    m = _Measured(sr, channels)
    signal = store.keep(m.through(blocks), channels, sr, frames)
    signal.measured = m
    return signal


def loudness_lufs(x: np.ndarray | Signal, sr: int) -> float:
    return measured(as_signal(x, sr)).meter.lufs()


def finish(y: np.ndarray | Signal, mix: np.ndarray | Signal, mode: Mode, preset: Preset, clip_mode: ClipMode,
           sr: int, *, target_lufs: float | None = None, store: Store = MEMORY) -> Restored:
    """Match loudness to the input (`target_lufs`, measured from `mix` when None) when the
    preset asks, then keep the result in full scale (`clip_mode`, as `dsp.clip_safety`).

    When the limiter has to act on a loudness-matched result it costs loudness (an input
    peaking at +3.5 dBFS loses about 1.5 LU), so the make-up gain is raised and the limiter
    run again, a few times, until the limited result sits within `LOUDNESS_TOLERANCE_LU`.
    The result is kept in `store` (an array for an array `y` in memory)."""
    check_choice(clip_mode, CLIP_MODES, CLIP_MODE)
    ys = as_signal(y, sr)
    gains: list[float] = []
    target = math.nan
    if preset.match_loudness:
        target = loudness_lufs(mix, sr) if target_lufs is None else target_lufs
        current = loudness_lufs(ys, sr)  # -inf (silence) and NaN (too short) leave y alone
        if np.isfinite(current) and np.isfinite(target):
            gains.append(float(target - current))
    out, m, clip = _safe(ys, gains, clip_mode, store)
    for _ in range(LOUDNESS_LIMIT_PASSES if clip.action == "limited" and preset.match_loudness else 0):
        shortfall_db = target - m.meter.lufs()
        if not np.isfinite(shortfall_db) or abs(shortfall_db) <= LOUDNESS_TOLERANCE_LU:
            break
        gains.append(float(shortfall_db))
        store.drop(out)
        out, m, again = _safe(ys, gains, clip_mode, store)
        clip = dsp.ClipSafety(clip.mode, again.action, clip.peak_before_dbfs, again.peak_after_dbfs)
    audio = out.array if isinstance(out, InMemory) and not isinstance(y, Signal) else out
    return Restored(audio, mode, float(sum(gains)), clip)


def _safe(ys: Signal, gains: list[float], clip_mode: ClipMode, store: Store):
    """`ys` times `gains`, then clip safety: (kept result, its loudness and peak, ClipSafety)."""
    scaled = Mapped(ys, dsp.gain_stage(list(gains))) if gains else ys
    before = measured(scaled).peak_dbfs
    if before <= 0.0 or clip_mode == "none":
        action, result = ("none" if before <= 0.0 else "left-above-full-scale"), scaled
    elif clip_mode == "limit":
        action, result = "limited", Mapped(scaled, dsp.limiter_stage(ys.sr, ys.frames, ys.channels))
    else:
        action, result = "normalized", Mapped(scaled, dsp.gain_stage([dsp.LIMIT_CEILING_DBFS - before]))
    m = _Measured(ys.sr, ys.channels)
    # Nothing to do: the chain's result itself (its loudness is not needed: no limiter acted).
    kept = ys if result is ys else store.keep(m.through(result.blocks()), ys.channels, ys.sr, ys.frames)
    after = before if action in ("none", "left-above-full-scale") else m.peak_dbfs
    return kept, m, dsp.ClipSafety(clip_mode, action, before, after)
