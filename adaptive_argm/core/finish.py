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
from . import change as change_
from . import deliver, dsp, levels
from .levels import LoudnessMeter
from .presets import Preset
from .signal import MEMORY, InMemory, Mapped, Signal, Store, as_signal, held
from .steps import StepOutcome

LOUDNESS_TOLERANCE_LU = 0.2
"""How close a loudness-matched result must land after clip safety."""
LOUDNESS_LIMIT_PASSES = 8
"""Make-up-gain-and-limit passes at most (each costs one limiter pass and one loudness measure)."""
UNCHANGED_TOLERANCE = 1e-6
"""A chain's result within this of its input, sample by sample (full scale = 1), is the input:
the preset found nothing to do, and it comes back at its own loudness."""
RESIDUAL_OVER_DB = 0.1
"""An input that nothing changed can still sit this far above full scale (a full-scale 16-bit
square wave once DC removal has centred it: +0.003 dB). It is scaled back to just under full
scale instead of being limited to the -1 dBFS ceiling, which would change a signal that needed
no restoration."""


@dataclass(frozen=True)
class Restored:
    """One restored mix, what was done to it after the chain, and whether it changed the input."""

    audio: np.ndarray | Signal | None
    """`(channels, samples)` float32 at the run's rate: an array, or (a streamed run) a signal on
    disk that lives as long as the run; None once that run has written it."""
    mode: str
    loudness_gain_db: float
    clip: dsp.ClipSafety
    steps: tuple[StepOutcome, ...] = ()
    """What each step of the chains that made it did (`where`: `mix` or the stem)."""
    loudness: deliver.LoudnessResult | None = None
    """The loudness target's record, when one was set (it replaces the loudness match)."""
    pre_gain: np.ndarray | Signal | None = None
    """The result before the loudness target's gain (kept for the residual and the figures)."""
    change: change_.Change | None = None
    recovery: dict = field(default_factory=dict)
    """What spectral recovery found and did, by chain ("mix" for direct, else each stem):
    `recovery.RecoveryReport`s."""

    def record(self) -> dict:
        """What report.json and compare.json say about it besides the delivered file."""
        return {"mode_used": self.mode, "clip_action": self.clip.action, "peak_before_safety_dbfs": self.clip.peak_before_dbfs,
                "loudness_gain_db": self.loudness_gain_db,
                "changed": None if self.change is None else self.change.changed,
                "change": None if self.change is None else self.change.to_dict()}


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
    """Loudness and peak of a signal: taken when it was kept (`keep_measured`) or first asked
    for, else in one pass (and kept with the signal: `finish` asks for its loudness, then its peak)."""
    m = getattr(x, "measured", None)
    if m is None:
        m = _Measured(x.sr, x.channels)
        for _ in m.through(x.blocks()):
            pass
        x.measured = m
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
           sr: int, *, target_lufs: float | None = None, store: Store = MEMORY,
           loudness_target: tuple[float, float] | None = None, keep_pre_gain: bool = False) -> Restored:
    """Match loudness to the input (`target_lufs`, measured from `mix` when None) when the
    preset asks, then keep the result in full scale (`clip_mode`, as `dsp.clip_safety`).

    When the limiter has to act on a loudness-matched result it costs loudness (an input
    peaking at +3.5 dBFS loses about 1.5 LU), so the make-up gain is raised and the limiter
    run again, a few times, until the limited result sits within `LOUDNESS_TOLERANCE_LU`, and
    only while each pass gives loudness back (a limiter that flattens a full-scale square wave
    gives none). A result the chain left unchanged (`unchanged`) gets no make-up gain. The result
    is kept in `store` (an array for an array `y` in memory).

    A `loudness_target` (LUFS, true-peak ceiling in dBTP) replaces both: the result is brought
    to that loudness under that ceiling (`deliver.normalize_loudness`), whatever the preset says;
    `keep_pre_gain` keeps the result before that gain (`Restored.pre_gain`, for the residual)."""
    check_choice(clip_mode, CLIP_MODES, CLIP_MODE)
    if loudness_target is not None:
        return _to_target(y, mode, clip_mode, sr, loudness_target, keep_pre_gain)
    ys = as_signal(y, sr)
    gains: list[float] = []
    target = math.nan
    if unchanged(ys, as_signal(mix, sr)):
        before = measured(ys).peak_dbfs
        residual = clip_mode != "none" and 0.0 < before <= RESIDUAL_OVER_DB
        out, _, clip = _safe(ys, [-before - 1e-3] if residual else [], clip_mode, store)
        if residual:
            clip = dsp.ClipSafety(clip_mode, "normalized", before, clip.peak_after_dbfs)
        audio = out.array if isinstance(out, InMemory) and not isinstance(y, Signal) else out
        return Restored(audio, mode, 0.0, clip)
    if preset.match_loudness:
        target = loudness_lufs(mix, sr) if target_lufs is None else target_lufs
        current = loudness_lufs(ys, sr)  # -inf (silence) and NaN (too short) leave y alone
        if np.isfinite(current) and np.isfinite(target):
            gains.append(float(target - current))
    out, m, clip = _safe(ys, gains, clip_mode, store)
    for _ in range(LOUDNESS_LIMIT_PASSES if clip.action == "limited" and preset.match_loudness else 0):
        shortfall_db = target - (m or measured(out)).meter.lufs()
        if not np.isfinite(shortfall_db) or abs(shortfall_db) <= LOUDNESS_TOLERANCE_LU:
            break
        out_next, m_next, again = _safe(ys, gains + [float(shortfall_db)], clip_mode, store)
        if not abs(target - (m_next or measured(out_next)).meter.lufs()) < 0.5 * abs(shortfall_db):  # gave nothing back
            store.drop(out_next)
            break
        gains.append(float(shortfall_db))
        store.drop(out)
        out, m = out_next, m_next
        clip = dsp.ClipSafety(clip.mode, again.action, clip.peak_before_dbfs, again.peak_after_dbfs)
    audio = out.array if isinstance(out, InMemory) and not isinstance(y, Signal) else out
    return Restored(audio, mode, float(sum(gains)), clip)


def unchanged(y: Signal, x: Signal, tolerance: float = UNCHANGED_TOLERANCE) -> bool:
    """Whether `y` is `x` within `tolerance`, sample by sample, read block by block (the two may
    cut their blocks differently)."""
    if y is x:
        return True
    if (y.channels, y.frames) != (x.channels, x.frames):
        return False
    ys, xs = y.blocks(), x.blocks()
    a = b = np.zeros((y.channels, 0), np.float32)
    while True:
        if a.shape[1] == 0:
            a = next(ys, None)
        if b.shape[1] == 0:
            b = next(xs, None)
        if a is None or b is None:
            return a is None and b is None
        n = min(a.shape[1], b.shape[1])
        if n and np.max(np.abs(a[:, :n] - b[:, :n])) > tolerance:
            return False
        a, b = a[:, n:], b[:, n:]


def _safe(ys: Signal, gains: list[float], clip_mode: ClipMode, store: Store):
    """`ys` times `gains`, then clip safety: (kept result, its loudness and peak when a limiter
    or normalising gain acted, else None; ClipSafety)."""
    scaled = Mapped(ys, dsp.gain_stage(list(gains))) if gains else ys
    before = _scaled_peak_dbfs(measured(ys).peak, gains)
    if before <= 0.0 or clip_mode == "none":
        action, result = ("none" if before <= 0.0 else "left-above-full-scale"), scaled
    elif clip_mode == "limit":
        action, result = "limited", Mapped(scaled, dsp.limiter_stage(ys.sr, ys.frames, ys.channels))
    else:
        action, result = "normalized", Mapped(scaled, dsp.gain_stage([dsp.LIMIT_CEILING_DBFS - before]))
    if action in ("none", "left-above-full-scale"):
        # Only a limiter's result has its loudness asked for again (the make-up gain's passes).
        kept = ys if result is ys else store.keep(result.blocks(), ys.channels, ys.sr, ys.frames)
        return kept, None, dsp.ClipSafety(clip_mode, action, before, before)
    m = _Measured(ys.sr, ys.channels)
    kept = store.keep(m.through(result.blocks()), ys.channels, ys.sr, ys.frames)
    return kept, m, dsp.ClipSafety(clip_mode, action, before, m.peak_dbfs)


def _scaled_peak_dbfs(peak: float, gains_db: list[float]) -> float:
    """The sample peak (dBFS) of a signal whose peak is `peak` after `dsp.gain_stage(gains_db)`,
    without reading it again: each float32 product rounds monotonically, so the largest sample
    scaled is the largest scaled sample, exactly."""
    p = np.array([peak], np.float32)
    for g in gains_db:
        p = levels.scaled(p, g)
    return 20.0 * math.log10(float(p[0])) if p[0] > 0 else -math.inf


def _to_target(y: np.ndarray | Signal, mode: Mode, clip_mode: ClipMode, sr: int,
               loudness_target: tuple[float, float], keep_pre_gain: bool) -> Restored:
    """The loudness target's gain and true-peak limiter. They read the result whole: a streamed
    result is gathered into memory here, only when a target is asked for (the limiter's
    look-ahead envelope is taken over the whole signal)."""
    if isinstance(y, Signal):
        y = held(y)
    out, loudness = deliver.normalize_loudness(y, sr, *loudness_target)
    action = "true-peak limited" if loudness.limiter_reduction_db > 0 else "none"
    clip = dsp.ClipSafety(clip_mode, action, levels.peak_dbfs(y), levels.peak_dbfs(out))
    return Restored(out, mode, loudness.gain_db, clip, loudness=loudness, pre_gain=y if keep_pre_gain else None)
