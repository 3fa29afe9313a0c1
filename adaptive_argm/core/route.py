"""Stem-relevance routing: measure each stem's level and activity against the mix, skip the
near-silent ones, and fall back to restoring the whole mix when separation has nothing to add.

The report this produces is the user's answer to "why was my track handled this way": every
decision carries the measurements and thresholds that made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import FRAME, MIN_ACTIVE, MODE, MODES, SKIP_POLICIES, SKIP_POLICY, Mode, SettingError, SkipPolicy, check_choice
from .levels import power_db

POWER_FLOOR = 1e-20
"""Floor of the router's power before dB: far below any level it compares."""


@dataclass(frozen=True)
class RouterConfig:
    """The router's thresholds, all in one place (CLI flags and preset files override them)."""

    frame_s: float = 0.1
    """Length of the short frames in which activity is measured."""
    min_rel_db: float = -30.0
    """A stem whose RMS sits further than this below the mix's RMS is near-silent."""
    active_rel_db: float = -25.0
    """A frame is active when the stem is within this many dB of the mix in that frame..."""
    active_floor_dbfs: float = -60.0
    """...and above this absolute level (so residual noise in a quiet passage is not activity)."""
    min_active_fraction: float = 0.10
    """A stem active in fewer frames than this is near-silent."""
    direct_only_stem: str = "other"
    """When this is the only informative stem, separation would only add artifacts."""

    def __post_init__(self):
        if not 0 <= self.min_active_fraction <= 1:
            raise SettingError(MIN_ACTIVE, f" must be between 0 and 1, not {self.min_active_fraction}")
        if not self.frame_s > 0:
            raise SettingError(FRAME, f" must be positive, not {self.frame_s}")


@dataclass(frozen=True)
class StemDecision:
    name: str
    rms_dbfs: float
    rel_db: float
    active_fraction: float
    decision: str
    """`process`, `skip` or `direct`."""
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RoutePlan:
    mode_requested: Mode
    mode_used: Mode
    """`stemwise` or `direct`."""
    stems: tuple[StemDecision, ...]
    reason: str
    skip_policy: SkipPolicy = "passthrough"

    def processed(self) -> list[str]:
        return [s.name for s in self.stems if s.decision == "process"]

    def skipped(self) -> list[str]:
        return [s.name for s in self.stems if s.decision == "skip"]

    def to_dict(self) -> dict:
        return {"mode_requested": self.mode_requested, "mode_used": self.mode_used, "reason": self.reason,
                "skip_policy": self.skip_policy, "stems": [s.to_dict() for s in self.stems]}


def _sample_power(x: np.ndarray) -> np.ndarray:
    """Channel-averaged power of each sample, float32 (sums over it are taken in float64): one
    channel's worth of memory, not float64 copies of every channel."""
    p = np.square(x[0], dtype=np.float32)
    for ch in x[1:]:
        p += np.square(ch, dtype=np.float32)
    p /= np.float32(x.shape[0])
    return p


def frame_power(p: np.ndarray, sr: int, frame_s: float) -> np.ndarray:
    """Mean of per-sample power `p` over non-overlapping frames, shape `(frames,)`, float64."""
    n = max(1, int(round(frame_s * sr)))
    if len(p) < n:
        return np.array([p.mean(dtype=np.float64)])
    frames = len(p) // n
    return p[: frames * n].reshape(frames, n).mean(axis=1, dtype=np.float64)


@dataclass(frozen=True)
class _Measure:
    rms_dbfs: float
    rel_db: float
    active_fraction: float


def measure_stems(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int,
                  cfg: RouterConfig) -> dict[str, _Measure]:
    """Per stem: level (dBFS), level relative to the mix (dB), and the share of frames where it
    is active (within `active_rel_db` of the mix and above `active_floor_dbfs`)."""
    if not stems:  # nothing to measure against the mix (which may be a stream on disk)
        return {}

    def levels(x: np.ndarray) -> tuple[float, np.ndarray]:  # overall and per frame, dB
        p = _sample_power(x)
        frames = frame_power(p, sr, cfg.frame_s)
        return float(power_db(p.mean(dtype=np.float64), POWER_FLOOR)), power_db(frames, POWER_FLOOR)

    mix_db, mix_frames_db = levels(mix)
    out = {}
    for name, stem in stems.items():
        rms_dbfs, frames_db = levels(stem)
        active = (frames_db >= mix_frames_db + cfg.active_rel_db) & (frames_db >= cfg.active_floor_dbfs)
        out[name] = _Measure(rms_dbfs, rms_dbfs - mix_db, float(np.mean(active)))
    return out


def _why_silent(m: _Measure, cfg: RouterConfig) -> str | None:
    if m.rel_db < cfg.min_rel_db:
        return f"near-silent: {m.rel_db:.1f} dB below the mix (threshold {cfg.min_rel_db:.0f} dB)"
    if m.active_fraction < cfg.min_active_fraction:
        return (f"near-silent: active in {m.active_fraction:.0%} of frames "
                f"(threshold {cfg.min_active_fraction:.0%})")
    return None


def route(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int, mode: Mode = "routed",
          cfg: RouterConfig = RouterConfig(), skip_policy: SkipPolicy = "passthrough") -> RoutePlan:
    """Decide, stem by stem, what restoration does. `stems` may be empty (no separation): the
    plan is then direct. Forced modes still measure every stem, so the report shows what the
    router would have done."""
    return route_modes(stems, mix, sr, (mode,), cfg, skip_policy)[mode]


def route_modes(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int, modes: tuple[Mode, ...],
                cfg: RouterConfig = RouterConfig(), skip_policy: SkipPolicy = "passthrough") -> dict[str, RoutePlan]:
    """`route` for several modes at once, measuring the stems once."""
    for mode in modes:
        check_choice(mode, MODES, MODE)
    check_choice(skip_policy, SKIP_POLICIES, SKIP_POLICY)
    measures = measure_stems(stems, mix, sr, cfg)
    return {mode: _plan(mode, measures, cfg, skip_policy) for mode in modes}


def _plan(mode: Mode, measures: dict[str, _Measure], cfg: RouterConfig, skip_policy: SkipPolicy) -> RoutePlan:
    silent = {name: _why_silent(m, cfg) for name, m in measures.items()}
    informative = [name for name, why in silent.items() if why is None]

    def decisions(kind: str, reason_for) -> tuple[StemDecision, ...]:
        return tuple(StemDecision(name, m.rms_dbfs, m.rel_db, m.active_fraction, kind(name), reason_for(name))
                     for name, m in measures.items())

    if not measures:
        return RoutePlan(mode, "direct", (), "no stems: the mix is restored directly", skip_policy)
    if mode == "direct":
        return RoutePlan(mode, "direct", decisions(lambda n: "direct", lambda n: "forced direct mode"),
                         "forced direct mode", skip_policy)
    if mode == "stemwise":
        return RoutePlan(mode, "stemwise", decisions(
            lambda n: "process",
            lambda n: "forced stem-wise" + (f" (router would skip: {silent[n]})" if silent[n] else "")),
            "forced stem-wise mode", skip_policy)
    if len(informative) <= 1:
        only = informative[0] if informative else None
        if only == cfg.direct_only_stem:
            why = f"only '{only}' is informative: separation would only add artifacts"
        else:
            why = f"{len(informative)} informative stem(s): nothing for separation to add"
        return RoutePlan(mode, "direct", decisions(
            lambda n: "direct", lambda n: f"{why}" + (f"; {silent[n]}" if silent[n] else "")), why, skip_policy)
    action = "added back unprocessed" if skip_policy == "passthrough" else "left out of the remix"
    return RoutePlan(mode, "stemwise", decisions(
        lambda n: "process" if silent[n] is None else "skip",
        lambda n: (f"informative: {measures[n].rel_db:.1f} dB re mix, active {measures[n].active_fraction:.0%}"
                   if silent[n] is None else f"{silent[n]}; {action}")),
        f"{len(informative)} informative stems: {', '.join(informative)}", skip_policy)
